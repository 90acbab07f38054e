// Answers the TUI's questions about one history file (see view-page.ts); every failure becomes an
// answer with the reason, never an exception.
import type { EventEntry } from './query.js';
import { HistoryReader } from './query.js';
import { statSync } from 'node:fs';
import { expectErrno } from '../errno.js';
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

export interface QueriesOptions {
  /** Opens the file (default HistoryReader.open). */
  open?: (path: string) => HistoryReader;
}

export class HistoryQueries {
  private reader?: HistoryReader;
  /** dev:ino of the file the reader has open. */
  private opened?: string;
  private readonly open: (path: string) => HistoryReader;

  constructor(readonly path: string, options: QueriesOptions = {}) {
    this.open = options.open ?? ((p) => HistoryReader.open(p));
  }

  answer(request: QueryRequest): QueryAnswer {
    try {
      const reader = this.current();
      if (request.op === 'open') return { id: request.id, ok: true, opened: true };
      if (request.op === 'page') return { id: request.id, ok: true, page: readHistoryPage(reader, request.query, request.now) };
      return { id: request.id, ok: true, events: readNewEvents(reader, request.after, request.now) };
    } catch (error) {
      // No file yet, no permission, a lock timeout: the next question opens it again.
      this.close();
      return { id: request.id, ok: false, problem: problemOf(this.path, error) };
    }
  }

  /** One connection kept between questions: it sees every commit the writer makes (WAL; each query
   *  is its own read transaction, run to its end). Opened again only when the path now names another
   *  file (moved away and made anew: the open connection would read the old one forever) or a writer
   *  changed the schema. Reopening for every question cost 0.7-2 ms more each (docs/history.md). */
  private current(): HistoryReader {
    let id: string | undefined;
    try {
      const st = statSync(this.path);
      id = `${st.dev}:${st.ino}`;
    } catch (error) {
      expectErrno(error, ['ENOENT', 'ENOTDIR', 'EACCES']); // said by the open below, in words
    }
    if (this.reader && (id === undefined || id !== this.opened || this.reader.schemaChanged())) this.close();
    if (!this.reader) {
      this.reader = this.open(this.path);
      this.opened = id;
    }
    return this.reader;
  }

  close(): void {
    const reader = this.reader;
    this.reader = undefined;
    this.opened = undefined;
    // better-sqlite3 refuses to close only while this connection runs a query, which cannot be the
    // case here (questions are answered one at a time, each to its end): anything it throws is a bug
    // and is left to surface.
    reader?.close();
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
