// A queued packet the queue loop fails to judge (an exception: a bug, since judging handles every input
// it expects) still gets exactly one answer, the default action. It must not pass for a default
// decision: it is counted on its own (COUNTER.judgeErrors, `failed to judge` in the status) and
// logged with the error — at once the first time, then at most once per interval.
import { RateLimitedLog, describeError } from './rate-limited-log.js';
import { COUNTER } from './types.js';

export class JudgeFailures {
  private readonly log: RateLimitedLog;

  constructor(
    private readonly counters: BigInt64Array,
    private readonly queueNum: number,
    private readonly defaultAction: string,
    log: (line: string) => void,
    intervalMs?: number,
    now?: () => number,
  ) {
    this.log = new RateLimitedLog(log, intervalMs, now);
  }

  failed(error: unknown): void {
    Atomics.add(this.counters, COUNTER.judgeErrors, 1n);
    this.log.say(`queue ${this.queueNum}: judging a packet failed, so it was given the default (${this.defaultAction}): ${describeError(error)}`);
  }
}
