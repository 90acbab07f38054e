// Reconnect timing: capped exponential backoff as an RxJS operator, so the schedule can be tested in
// virtual time (TestScheduler) with no real timers.
import { retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike, asyncScheduler } from 'rxjs';

export interface BackoffPolicy {
  /** Delay before the first retry. */
  initialMs: number;
  /** No delay grows past this. */
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 10_000, factor: 2 };

/** Delay before retry number `retry` (1 = first retry after a failure). */
export function backoffDelay(retryNumber: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const exponent = Math.max(0, retryNumber - 1);
  return Math.min(policy.maxMs, policy.initialMs * policy.factor ** exponent);
}

export interface RetryWait {
  error: unknown;
  retry: number;
  delayMs: number;
  /** scheduler.now() + delayMs */
  retryAt: number;
}

/** Resubscribes after each error with a growing delay; the count starts over once the source emits
 *  (a connection that got as far as `hello` was a success). Completion is never retried, nor an
 *  error `retryable` says no to (it goes on to the subscriber). */
export function retryWithBackoff<T>(
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  scheduler: SchedulerLike = asyncScheduler,
  onWait?: (wait: RetryWait) => void,
  retryable: (error: unknown) => boolean = () => true,
): MonoTypeOperatorFunction<T> {
  return retry({
    resetOnSuccess: true,
    delay: (error: unknown, retryNumber: number) => {
      if (!retryable(error)) return throwError(() => error);
      const delayMs = backoffDelay(retryNumber, policy);
      onWait?.({ error, retry: retryNumber, delayMs, retryAt: scheduler.now() + delayMs });
      return timer(delayMs, scheduler);
    },
  });
}
