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
  | { type: 'problem'; message: string }
  | { type: 'recovered'; lostBatches: number; lostFlows: number }
  | { type: 'events'; events: HistoryEvent[] };

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
      if (!this.failing) this.notify({ type: 'problem', message: `${this.config.path}: ${(error as Error).message}` });
      this.failing = true;
      this.lose(batch);
    }
  }

  private lose(batch: HistoryBatch): void {
    this.writer?.learn(batch); // its programs' numbers are used by later batches
    this.lostBatches++;
    this.lostFlows += batch.rows.length + (batch.columns ? batch.columns.numbers.length / ROW_FIELDS : 0);
  }

  private schedulePrune(ms: number): void {
    if (this.closed) return;
    this.pruneTimer = setTimeout(() => {
      let more = false;
      if (!this.failing) {
        try {
          more = this.writer?.pruneStep() ?? false;
        } catch (error) {
          more = false;
          // a full or failing disk shows in the next write, which reports it; anything else is said here
          if (!isDiskError(error)) this.notify({ type: 'problem', message: `${this.config.path}: pruning old history failed: ${(error as Error).message}` });
        }
      }
      this.schedulePrune(more ? PRUNE_STEP_GAP_MS : PRUNE_EVERY_MS);
    }, ms);
    this.pruneTimer.unref?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    if (this.db) closeHistoryDatabase(this.db);
  }
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
