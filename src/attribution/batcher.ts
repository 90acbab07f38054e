// Collects keys over a short window and hands them on in batches: the first key starts the window;
// the batch leaves when the window ends or when it reaches maxBatch, whichever is first. A key already
// waiting is not queued twice. Time comes from an rxjs scheduler so tests can run it in virtual time.
import { asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';

export interface BatcherOptions {
  /** How long the first key of a batch waits for company, in ms. */
  windowMs: number;
  maxBatch: number;
  scheduler?: SchedulerLike;
}

export class Batcher {
  private queue = new Set<string>();
  private timer: Subscription | undefined;
  private readonly scheduler: SchedulerLike;

  constructor(private readonly flushBatch: (keys: string[]) => void, private readonly options: BatcherOptions) {
    if (!(options.windowMs >= 0) || !Number.isFinite(options.windowMs)) throw new RangeError(`windowMs must be a finite number ≥ 0, got ${options.windowMs}`);
    if (!Number.isSafeInteger(options.maxBatch) || options.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    this.scheduler = options.scheduler ?? asyncScheduler;
  }

  /** Number of keys waiting for their batch to leave. */
  get pending(): number {
    return this.queue.size;
  }

  add(key: string): void {
    if (this.queue.has(key)) return;
    this.queue.add(key);
    if (this.queue.size >= this.options.maxBatch) {
      this.flush();
      return;
    }
    this.timer ??= this.scheduler.schedule(() => {
      this.timer = undefined;
      this.flush();
    }, this.options.windowMs);
  }

  /** Sends everything waiting now, in batches of at most maxBatch. */
  flush(): void {
    this.timer?.unsubscribe();
    this.timer = undefined;
    while (this.queue.size > 0) {
      const batch: string[] = [];
      for (const key of this.queue) {
        batch.push(key);
        if (batch.length === this.options.maxBatch) break;
      }
      for (const key of batch) this.queue.delete(key);
      this.flushBatch(batch);
    }
  }

  /** Drops what is waiting (on shutdown). */
  cancel(): void {
    this.timer?.unsubscribe();
    this.timer = undefined;
    this.queue.clear();
  }
}
