// Runs a TrafficTracker at a steady rate and hands each non-empty update to the caller. Timers are
// unref'd: a poller never keeps the process alive by itself.
import type { TrafficTracker, TrafficUpdate } from './tracker.js';

export interface TrafficPoller {
  /** Polls now (outside the schedule), e.g. before a snapshot. */
  pollNow(): TrafficUpdate;
  stop(): void;
}

export function startTrafficPoller(
  tracker: TrafficTracker,
  onUpdate: (update: TrafficUpdate) => void,
  options: { intervalMs?: number; onError?: (error: unknown) => void; beforePoll?: () => void } = {},
): TrafficPoller {
  const intervalMs = Math.max(50, options.intervalMs ?? 1000);
  const run = (): TrafficUpdate => {
    options.beforePoll?.();
    const update = tracker.poll();
    if (update.counters.length > 0 || update.ended.length > 0) onUpdate(update);
    return update;
  };
  const timer = setInterval(() => {
    try {
      run();
    } catch (error) {
      options.onError?.(error);
    }
  }, intervalMs);
  timer.unref();
  return { pollNow: run, stop: () => clearInterval(timer) };
}
