// The reducer run over a stream of actions in bounded slices of work. Actions that arrive within
// `batchMs` are applied together (one step per burst, as the screen needs); but however many have
// piled up, one macrotask applies at most `sliceMs` worth of them and then yields, so the event loop
// still turns: SIGTERM, Ctrl-C and every key are handled in time even while a flood is digested (a
// flood of rule changes once kept the TUI deaf to all three for over 11 minutes).
import { Observable, type SchedulerLike, type Subscription } from 'rxjs';
import { performance } from 'node:perf_hooks';
import { reduce, type TableAction } from '../state/reducer.js';
import type { TableState } from '../state/types.js';

export interface SliceOptions {
  batchMs: number;
  sliceMs: number;
  /** Actions in the first reducer step of a slice; later steps are sized from how long the last
   *  one took per action, so a step of slow actions stays within the slice too. */
  chunk: number;
  now(): number;
  /** Runs the batch wait and the turn between slices in virtual time (tests). Without it, the
   *  wait is a timer and the next slice an immediate, so input and signals run in between. */
  scheduler?: SchedulerLike;
  /** An action someone waits on (the answer to a key press): applied at the next turn instead of
   *  after the batch wait. */
  urgent?: (action: TableAction) => boolean;
}

const MAX_CHUNK = 50_000;

export function reduceInSlices(actions$: Observable<TableAction>, initial: TableState, options: SliceOptions): Observable<TableState> {
  return new Observable<TableState>((subscriber) => {
    let state = initial;
    let chunk = options.chunk;
    let queue: TableAction[] = [];
    let head = 0;
    let waiting: { cancel(): void } | undefined;
    /** The pending drain is the batch wait (not a slice's next turn). */
    let batching = false;
    const later = (run: () => void, delayMs: number): { cancel(): void } => {
      const { scheduler } = options;
      if (scheduler) {
        const action: Subscription = scheduler.schedule(run, delayMs);
        return { cancel: () => action.unsubscribe() };
      }
      if (delayMs > 0) {
        const timer = setTimeout(run, delayMs);
        return { cancel: () => clearTimeout(timer) };
      }
      const immediate = setImmediate(run);
      return { cancel: () => clearImmediate(immediate) };
    };

    const drain = (): void => {
      waiting = undefined;
      batching = false;
      const start = performance.now();
      while (head < queue.length) {
        const step = queue.slice(head, head + chunk);
        head += step.length;
        const count = step.length;
        step.push({ type: 'tick', now: options.now() });
        const before = performance.now();
        state = reduce(state, { type: 'batch', actions: step });
        const took = performance.now() - before;
        chunk = Math.min(Math.max(Math.floor((options.sliceMs * count) / Math.max(took, 0.01)), 16), MAX_CHUNK);
        subscriber.next(state);
        if (performance.now() - start >= options.sliceMs) break;
      }
      if (head >= queue.length) {
        queue = [];
        head = 0;
      } else {
        // More is waiting: let input, signals and timers run first.
        waiting = later(drain, 0);
      }
    };

    const sub = actions$.subscribe({
      next: (action) => {
        queue.push(action);
        if (waiting && batching && options.urgent?.(action)) {
          waiting.cancel();
          waiting = undefined;
        }
        if (!waiting) {
          const now = options.urgent?.(action) === true;
          batching = !now;
          waiting = later(drain, now ? 0 : options.batchMs);
        }
      },
      error: (error: unknown) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
    return () => {
      sub.unsubscribe();
      waiting?.cancel();
    };
  });
}
