// The agent's stop signals. Cleanup (firewall chains, BPF programs, socket, status file) must finish
// whatever signals arrive: with `process.once`, a second Ctrl-C during cleanup killed the agent half-way
// and, with --fail-closed, left every new connection in the namespace timing out. So the handlers stay
// installed until the process exits; the first signal starts the stop, later ones are only reported.

/** The signals that ask the agent to stop (SIGHUP: its terminal went away). */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface StopRequest {
  /** Resolves with the first stop signal, or when `request` is called (e.g. the queue loop died). */
  readonly requested: Promise<string>;
  /** Asks for a stop from inside the agent; the reason is what `requested` resolves with. */
  request(reason: string): void;
}

/** Installs the stop-signal handlers for the rest of the process's life (never removed: a signal that
 *  arrives while cleanup runs must not fall back to the default action, which kills the process).
 *  `onRepeat` is told of every signal after the first. */
export function listenForStop(onRepeat: (signal: NodeJS.Signals) => void): StopRequest {
  let resolve!: (reason: string) => void;
  let asked = false;
  const requested = new Promise<string>((r) => (resolve = r));
  const request = (reason: string): void => {
    if (asked) return;
    asked = true;
    resolve(reason);
  };
  for (const signal of STOP_SIGNALS) {
    process.on(signal, () => {
      if (asked) onRepeat(signal);
      else request(signal);
    });
  }
  return { requested, request };
}
