// Answers the TUI's questions about one history file (see view-page.ts); every failure becomes an
// answer with the reason, never an exception.
import type { EventEntry } from './query.js';
import { HistoryReader } from './query.js';
import { HistoryRefused } from './schema.js';
import { readHistoryPage, readNewEvents, type HistoryPage, type PageQuery } from './view-page.js';

export type QueryRequest =
  /** Opens the file ahead of the first question (the TUI asks at start, the view opens later). */
  | { id: number; op: 'open' }
  | { id: number; op: 'page'; query: PageQuery; now: number }
  | { id: number; op: 'events'; after: number; now: number };

export type QueryAnswer =
  | { id: number; ok: true; opened: true }
  | { id: number; ok: true; page: HistoryPage }
  | { id: number; ok: true; events: EventEntry[] }
  | { id: number; ok: false; problem: ReadProblem };

/** Why the file could not be read: `code` picks the explanation the view gives (history-source.ts). */
export interface ReadProblem {
  code: 'missing' | 'denied' | 'refused' | 'failed';
  message: string;
}

export class HistoryQueries {
  private reader?: HistoryReader;

  constructor(readonly path: string) {}

  answer(request: QueryRequest): QueryAnswer {
    try {
      // Opened for each question (a few milliseconds): a read-only connection kept open between
      // them was seen to miss what a writer committed meanwhile (the writer's connection closing
      // folds and removes the WAL), and the file may be replaced or appear at any time.
      this.reader = HistoryReader.open(this.path);
      if (request.op === 'open') return { id: request.id, ok: true, opened: true };
      if (request.op === 'page') return { id: request.id, ok: true, page: readHistoryPage(this.reader, request.query, request.now) };
      return { id: request.id, ok: true, events: readNewEvents(this.reader, request.after, request.now) };
    } catch (error) {
      return { id: request.id, ok: false, problem: problemOf(this.path, error) };
    } finally {
      this.close();
    }
  }

  close(): void {
    try {
      this.reader?.close();
    } catch {
      // already closed
    }
    this.reader = undefined;
  }
}

function problemOf(path: string, error: unknown): ReadProblem {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'EACCES' || code === 'EPERM' || /SQLITE_(CANTOPEN|READONLY|PERM)|unable to open|attempt to write a readonly/i.test(`${String(code)} ${message}`)) {
    return { code: 'denied', message: `cannot read ${path}: ${message}` };
  }
  if (error instanceof HistoryRefused) return { code: /no history file there/.test(message) ? 'missing' : /permission denied/.test(message) ? 'denied' : 'refused', message };
  return { code: 'failed', message: `${path}: ${message}` };
}
