// The history reader behind the TUI's view (reader-core.ts) keeps one read-only connection between
// questions, and that connection sees what a writer on another thread commits meanwhile (each query is
// its own read transaction under WAL). The file replaced at its path is read anew; a close that fails
// is not swallowed.
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { HistoryReader } from '../../src/history/query.js';
import { HistoryQueries, type QueryAnswer } from '../../src/history/reader-core.js';
import { program, writeConnections } from './helpers/fixture.js';

const SQLITE = fileURLToPath(new URL('../../node_modules/better-sqlite3', import.meta.url));
/** A writer on its own thread, as the agent's: WAL, one transaction per message, an event each. */
const WRITER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL'); db.pragma('synchronous = NORMAL'); db.pragma('busy_timeout = 2000');
const insert = db.prepare("INSERT INTO events (time, kind, detail) VALUES (?, 'first-seen', ?)");
let n = 0;
parentPort.on('message', (time) => {
  db.transaction(() => insert.run(time, 'program ' + ++n + ' connected for the first time'))();
  parentPort.postMessage(n);
});`;

const dirs: string[] = [];
const workers: Worker[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) await w.terminate();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function historyFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-reader-'));
  dirs.push(d);
  const path = join(d, 'history.db');
  writeConnections(path, [{ at: Date.now() - 60_000, program: program('curl'), host: 'example.org', rx: 10, tx: 10 }], Date.now() - 60_000);
  return path;
}

function events(a: QueryAnswer): string[] {
  if (!a.ok || !('events' in a)) throw new Error(`no events: ${JSON.stringify(a)}`);
  return a.events.map((e) => e.detail);
}

describe('the history reader\'s connection', () => {
  it('one connection, kept between questions, sees each commit of a writer thread', async () => {
    const path = historyFile();
    const started = Date.now();
    let opened = 0;
    const queries = new HistoryQueries(path, { open: (p) => (opened++, HistoryReader.open(p)) });
    const writer = new Worker(WRITER, { eval: true, workerData: { path, sqlite: SQLITE } });
    workers.push(writer);
    const commit = (time: number) => new Promise<number>((resolve) => {
      writer.once('message', resolve);
      writer.postMessage(time);
    });
    await commit(started + 1);
    for (let i = 1; i <= 5; i++) {
      if (i > 1) await commit(started + i);
      const seen = events(queries.answer({ id: 1 + i, op: 'events', after: started, now: started + 10 }));
      expect(seen).toHaveLength(i);
      expect(seen.at(-1)).toBe(`program ${i} connected for the first time`);
      // The view's own question on the same connection, between the writer's commits.
      const page = queries.answer({ id: 100 + i, op: 'page', query: { window: '24h', by: 'process', points: 30 }, now: Date.now() });
      expect(page.ok && 'page' in page && page.page.entries.map((e) => e.label)).toEqual(['curl']);
    }
    expect(opened).toBe(1); // one connection for every question
    queries.close();
  });

  it('a file moved away and made anew at the path is read anew', () => {
    const path = historyFile();
    const queries = new HistoryQueries(path);
    const page = () => {
      const a = queries.answer({ id: 1, op: 'page', query: { window: '24h', by: 'process', points: 30 }, now: Date.now() });
      return a.ok && 'page' in a ? a.page.entries.map((e) => e.label) : a;
    };
    expect(page()).toEqual(['curl']);
    renameSync(path, `${path}.old`);
    writeConnections(path, [{ at: Date.now() - 1000, program: program('wget'), host: 'example.net', rx: 5, tx: 5 }], Date.now() - 1000);
    expect(page()).toEqual(['wget']);
    queries.close();
  });

  it('a close that fails is not swallowed', () => {
    const path = historyFile();
    const queries = new HistoryQueries(path, {
      open: (p) => {
        const reader = HistoryReader.open(p);
        const close = reader.close.bind(reader);
        reader.close = () => {
          close();
          throw new Error('disk I/O error while closing');
        };
        return reader;
      },
    });
    expect(queries.answer({ id: 1, op: 'open' }).ok).toBe(true);
    expect(() => queries.close()).toThrow('disk I/O error while closing');
  });
});
