// The writer's life around HistoryWriter, the same on a worker thread and inline: opens the file
// (refusing one that is not a history), writes each batch, prunes between batches in small steps, and
// turns a failing disk into one report — later batches are dropped and counted, a write is tried again
// every RETRY_MS, and recovery is reported with what was lost. Nothing here ever throws at the caller.
import type Database from 'better-sqlite3';
import { ROW_FIELDS, type HistoryBatch, type HistoryEvent } from './batch.js';
import { HistoryRefused, closeHistoryDatabase, openHistoryDatabase } from './schema.js';
import { HistoryWriter, type RetentionOptions } from './writer.js';

export interface WriterConfig extends RetentionOptions {
  path: string;
  /** After a failed write, how long later batches are dropped before a write is tried again (default 10 s). */
  retryMs?: number;
}

/** What the writer tells its owner. */
export type WriterNotice =
  | { type: 'ready' }
  | { type: 'refused'; message: string }
  /** `writing`: the writes themselves fail (later batches are dropped until one succeeds); false: a
   *  side task failed (pruning) and flows are still written. */
  | { type: 'problem'; message: string; writing: boolean }
  | { type: 'recovered'; lostBatches: number; lostFlows: number }
  | { type: 'events'; events: HistoryEvent[] }
  /** At most once a second while something changed: new flows written and not written (dropped while
   *  the disk failed) since the file was opened, and when the last write was. */
  | { type: 'progress'; written: number; lost: number; lastWrite?: number };

const RETRY_MS = 10_000;
const PRUNE_EVERY_MS = 1_000;
/** Between two steps of a prune that has more to do: batches get in between. */
const PRUNE_STEP_GAP_MS = 20;

export class WriterCore {
  private db?: Database.Database;
  private writer?: HistoryWriter;
  private failing = false;
  private lastTry = 0;
  private lostBatches = 0;
  private lostFlows = 0;
  /** Since the file was opened: new flows written, and new flows dropped (lostFlows is per outage). */
  private written = 0;
  private lostTotal = 0;
  private lastWrite?: number;
  private reported = { written: 0, lost: 0 };
  private pruneTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly config: WriterConfig, private readonly notify: (n: WriterNotice) => void) {}

  open(): boolean {
    try {
      this.db = openHistoryDatabase(this.config.path);
      // A damaged file is found before anything is written to it (off the verdict path: this is the
      // writer's own thread); it is then left exactly as it was.
      const check = this.db.pragma('quick_check(1)', { simple: true });
      if (check !== 'ok') {
        this.db.close();
        this.db = undefined;
        throw new HistoryRefused(`${this.config.path} is damaged (${String(check).replace(/\s+/g, ' ')}); flowtop leaves it alone: move it away (sqlite3 ${this.config.path} .recover may save its rows)`);
      }
      this.writer = new HistoryWriter(this.db, this.config);
    } catch (error) {
      this.notify({ type: 'refused', message: error instanceof HistoryRefused ? error.message : `${this.config.path}: ${(error as Error).message}` });
      return false;
    }
    this.notify({ type: 'ready' });
    this.schedulePrune(PRUNE_EVERY_MS);
    return true;
  }

  write(batch: HistoryBatch): void {
    if (!this.writer || this.closed) return;
    const now = Date.now();
    if (this.failing && now - this.lastTry < (this.config.retryMs ?? RETRY_MS)) return this.lose(batch);
    this.lastTry = now;
    try {
      const events = this.writer.write(batch, now);
      this.written += newFlows(batch);
      this.lastWrite = now;
      if (this.failing) {
        this.failing = false;
        this.notify({ type: 'recovered', lostBatches: this.lostBatches, lostFlows: this.lostFlows });
        this.lostBatches = this.lostFlows = 0;
      }
      if (events.length > 0) this.notify({ type: 'events', events });
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
        // Never written to again: a damaged file is the person's to recover.
        this.notify({ type: 'refused', message: `${this.config.path} is damaged (${(error as Error).message}); recording stopped and the file is left alone` });
        this.close();
        return;
      }
      if (!this.failing) this.notify({ type: 'problem', message: `${this.config.path}: ${(error as Error).message}`, writing: true });
      this.failing = true;
      this.lose(batch);
    }
  }

  private lose(batch: HistoryBatch): void {
    this.writer?.learn(batch); // its programs' numbers are used by later batches
    this.lostBatches++;
    const flows = newFlows(batch);
    this.lostFlows += flows;
    this.lostTotal += flows;
  }

  /** Says how many flows were written and lost, when that changed since it last said so. */
  private reportProgress(): void {
    if (this.written === this.reported.written && this.lostTotal === this.reported.lost) return;
    this.reported = { written: this.written, lost: this.lostTotal };
    this.notify({ type: 'progress', written: this.written, lost: this.lostTotal, ...(this.lastWrite !== undefined ? { lastWrite: this.lastWrite } : {}) });
  }

  private schedulePrune(ms: number): void {
    if (this.closed) return;
    this.pruneTimer = setTimeout(() => {
      this.reportProgress();
      let more = false;
      if (!this.failing) {
        try {
          more = this.writer?.pruneStep() ?? false;
        } catch (error) {
          more = false;
          // a full or failing disk shows in the next write, which reports it; anything else is said here
          if (!isDiskError(error)) this.notify({ type: 'problem', message: `${this.config.path}: pruning old history failed: ${(error as Error).message}`, writing: false });
        }
      }
      this.schedulePrune(more ? PRUNE_STEP_GAP_MS : PRUNE_EVERY_MS);
    }, ms);
    this.pruneTimer.unref?.();
  }

  close(): void {
    if (this.closed) return;
    this.reportProgress();
    this.closed = true;
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    if (this.db) closeHistoryDatabase(this.db);
  }
}

/** The flows a batch adds (its updates to flows already written are not counted). */
function newFlows(batch: HistoryBatch): number {
  return batch.rows.length + (batch.columns ? batch.columns.numbers.length / ROW_FIELDS : 0);
}

function sqliteCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** SQLITE_FULL, SQLITE_IOERR_* and the like: the disk, not the data or the code. */
function isDiskError(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_READONLY';
}
