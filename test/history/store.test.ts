// The history store end to end in one process: events in through the recorder, rows out through the
// reader, the file checked with SQLite itself. Real files in a temporary folder.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import type { FlowRecord } from '../../src/protocol/messages.js';
import { HistoryRecorder } from '../../src/history/recorder.js';
import { openHistorySink } from '../../src/history/sink.js';
import { HistoryReader } from '../../src/history/query.js';
import { HistoryRefused, openHistoryDatabase } from '../../src/history/schema.js';
import { HistoryWriter } from '../../src/history/writer.js';
import { MAX_TEXT_IDS } from '../../src/history/batch.js';
import type { WriterNotice } from '../../src/history/writer-core.js';
import { HistoryState } from '../../src/history/status.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-history-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

function flow(id: string, over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    id, time: T0, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
    local: { address: '10.0.0.1', port: 40000 }, remote: { address: '93.184.216.34', port: 443 },
    token: Buffer.from(`tok-${over.pid ?? 1}`).toString('base64'), uid: 1000, pid: 1,
    ...over,
  };
}

function curl(sha: string): Attribution {
  return { trust: 'secure', pid: 1, uid: 1000, name: 'curl', path: '/usr/bin/curl', identity: `sha256:${sha}`, sha256: sha, parents: [{ pid: 2, name: 'bash', path: '/usr/bin/bash' }] };
}

function setup(resolveWith: (token: string) => Attribution = () => curl('a'.repeat(64))) {
  const path = join(tempDir(), 'history.db');
  const notices: WriterNotice[] = [];
  const sink = openHistorySink({ path }, { thread: 'inline', onNotice: (n) => notices.push(n) });
  const recorder = new HistoryRecorder({
    write: (b) => sink.write(b),
    resolve: async (tokens) => tokens.map((t) => resolveWith(Buffer.from(t).toString())),
    flushMs: 60_000,
  });
  return { path, notices, sink, recorder };
}

async function settle(recorder: HistoryRecorder): Promise<void> {
  recorder.flush(); // starts the lookups
  await new Promise((r) => setImmediate(r));
  recorder.flush(true); // rows held for a possible end go too
}

describe('history store', () => {
  it('records a flow with its program, verdict, host, bytes and end; reads it back by filter', async () => {
    const { path, sink, recorder } = setup();
    recorder.observe({ type: 'flow', flow: flow('f1', { pending: { deadline: T0 + 30_000 } }) });
    recorder.observe({ type: 'verdict', id: 'f1', time: T0 + 10, verdict: { action: 'allow', by: 'user', decider: 'nats:alice@hub' } });
    recorder.observe({ type: 'flow', flow: flow('f1', { remoteHost: { name: 'www.example.com', source: 'dns' }, verdict: { action: 'allow', by: 'user', decider: 'nats:alice@hub' } }) });
    recorder.observe({ type: 'bytes', time: T0 + 1000, counters: [{ id: 'f1', rx: 5000, tx: 300 }] });
    await settle(recorder);
    recorder.observe({ type: 'bytes', time: T0 + 2000, counters: [{ id: 'f1', rx: 9000, tx: 700 }] });
    recorder.observe({ type: 'end', id: 'f1', time: T0 + 2500 });
    recorder.observe({ type: 'flow', flow: flow('f2', { remote: { address: '198.51.100.7', port: 53 }, protocol: 'udp', verdict: { action: 'block', by: 'rule', ruleId: 'r-dns' } }) });
    await settle(recorder);
    recorder.close();
    await sink.close();

    const reader = HistoryReader.open(path);
    const all = reader.flows({ since: 0 });
    expect(all).toHaveLength(2);
    const f1 = reader.flows({ since: 0, host: 'www.example.com' });
    expect(f1).toEqual([expect.objectContaining({
      start: T0, end: T0 + 2500, action: 'allow', by: 'user', decider: 'nats:alice@hub', host: 'www.example.com', rx: 9000, tx: 700, uid: 1000,
      trust: 'secure', parent: '/usr/bin/bash', remote: { address: '93.184.216.34', port: 443 },
      process: { identity: `sha256:${'a'.repeat(64)}`, name: 'curl', path: '/usr/bin/curl' },
    })]);
    expect(reader.flows({ since: 0, domain: 'example.com' })).toHaveLength(1);
    expect(reader.flows({ since: 0, action: 'block' })).toEqual([expect.objectContaining({ rule: 'r-dns', by: 'rule', protocol: 'udp' })]);
    expect(reader.flows({ since: 0, process: 'curl' })).toHaveLength(2);
    expect(reader.flows({ since: 0, process: 'wget' })).toHaveLength(0);
    const top = reader.top({ by: 'process', since: 0 });
    expect(top[0]).toMatchObject({ label: 'curl', rx: 9000, tx: 700, flows: 2 });
    expect(reader.top({ by: 'domain', since: 0 })[0]).toMatchObject({ key: 'example.com', rx: 9000, flows: 1 });
    expect(reader.top({ by: 'user', since: 0 })[0]).toMatchObject({ key: '1000', flows: 2 });
    const series = reader.series({ by: 'process', since: 0, until: Date.now(), points: 10 });
    expect(series.rx.get(`sha256:${'a'.repeat(64)}`)?.reduce((a, b) => a + b, 0)).toBe(9000);
    const kinds = reader.events({ since: 0 }).map((e) => e.kind).sort();
    expect(kinds).toEqual(['first-seen', 'rule-blocking']);
    reader.close();
    // A person can open it with SQLite itself.
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('a flow told whole, already ended, is one row with its end and bytes, counted in its program\'s and host\'s buckets', async () => {
    const { path, sink, recorder } = setup();
    const told = {
      time: T0, end: T0 + 40, direction: 'outbound' as const, protocol: 'tcp' as const, family: 'ipv4' as const,
      remote: { address: '93.184.216.34', port: 443 }, remoteHost: { name: 'www.example.com', source: 'dns' as const },
      verdict: { action: 'allow' as const, by: 'rule' as const, ruleId: 'r-web' }, token: Buffer.from('tok-1').toString('base64'), uid: 1000, rx: 4000, tx: 120,
    };
    recorder.ended(told);
    // the object is the agent's, reused for the next flow: what was recorded is a copy
    told.remote.address = '203.0.113.9';
    told.rx = 1;
    recorder.ended(told);
    await settle(recorder);
    recorder.close();
    await sink.close();
    const reader = HistoryReader.open(path);
    const rows = reader.flows({ since: 0 }).sort((a, b) => b.rx! - a.rx!);
    expect(rows).toEqual([
      expect.objectContaining({
        start: T0, end: T0 + 40, action: 'allow', by: 'rule', rule: 'r-web', rx: 4000, tx: 120, uid: 1000, host: 'www.example.com',
        remote: { address: '93.184.216.34', port: 443 }, process: expect.objectContaining({ name: 'curl' }),
      }),
      expect.objectContaining({ end: T0 + 40, rx: 1, tx: 120, remote: { address: '203.0.113.9', port: 443 } }),
    ]);
    expect(reader.top({ by: 'process', since: 0 })[0]).toMatchObject({ label: 'curl', rx: 4001, tx: 240, flows: 2 });
    expect(reader.top({ by: 'domain', since: 0 })[0]).toMatchObject({ key: 'example.com', rx: 4001, flows: 2 });
    reader.close();
  });

  it('says when a known path runs other code, and when a known identity\'s hash moves', async () => {
    let sha = 'a'.repeat(64);
    const { path, sink, recorder } = setup(() => curl(sha));
    recorder.observe({ type: 'flow', flow: flow('f1', { pid: 1 }) });
    await settle(recorder);
    sha = 'b'.repeat(64);
    recorder.observe({ type: 'flow', flow: flow('f2', { pid: 2 }) });
    await settle(recorder);
    recorder.close();
    await sink.close();
    const reader = HistoryReader.open(path);
    const events = reader.events({ since: 0 });
    expect(events.map((e) => e.kind)).toEqual(['changed', 'first-seen']);
    expect(events[0]!.detail).toContain('/usr/bin/curl changed');
    reader.close();
  });

  it('a row whose program lookup is slow is written within a second and completed when the answer comes', async () => {
    const path = join(tempDir(), 'history.db');
    const sink = openHistorySink({ path }, { thread: 'inline', onNotice: () => {} });
    let answer: (a: Attribution[]) => void = () => {};
    let clock = T0;
    const recorder = new HistoryRecorder({ write: (b) => sink.write(b), resolve: () => new Promise((r) => (answer = r)), flushMs: 60_000, now: () => clock });
    recorder.observe({ type: 'flow', flow: flow('f1', { verdict: { action: 'allow', by: 'rule', ruleId: 'r1' } }) });
    recorder.flush();
    const reader = HistoryReader.open(path);
    expect(reader.flows({ since: 0 })).toHaveLength(0); // waiting for the lookup
    clock += 600;
    recorder.flush();
    expect(reader.flows({ since: 0 })).toEqual([expect.objectContaining({ process: {}, trust: 'unknown' })]);
    answer([curl('c'.repeat(64))]);
    await new Promise((r) => setImmediate(r));
    recorder.flush();
    expect(reader.flows({ since: 0 })).toEqual([expect.objectContaining({ process: expect.objectContaining({ name: 'curl' }), trust: 'secure', parent: '/usr/bin/bash' })]);
    expect(reader.events({ since: 0 }).map((e) => e.kind)).toEqual(['first-seen']);
    reader.close();
    recorder.close();
    await sink.close();
  });

  it('flows waiting for a late lookup keep their place while many others come and go: the answer completes their rows only', async () => {
    const path = join(tempDir(), 'history.db');
    const sink = openHistorySink({ path }, { thread: 'inline', onNotice: () => {} });
    const lookups: Array<(a: Attribution[]) => void> = [];
    let clock = T0;
    const recorder = new HistoryRecorder({ write: (b) => sink.write(b), flushMs: 60_000, now: () => clock, resolve: () => new Promise((r) => lookups.push(r)) });
    const quick = { ...curl('f'.repeat(64)), name: 'quick', path: '/usr/bin/quick' };
    const late = { ...curl('e'.repeat(64)), name: 'late', path: '/usr/bin/late' };
    // The quick program's lookup answers at once.
    recorder.observe({ type: 'flow', flow: flow('quick-first', { pid: 8 }) });
    recorder.flush();
    lookups.shift()!([quick]);
    await new Promise((r) => setImmediate(r));
    // Ten flows of the slow program end while its lookup is under way; past the wait their rows are
    // written without their program.
    for (let i = 0; i < 10; i++) {
      recorder.observe({ type: 'flow', flow: flow(`slow${i}`, { pid: 7 }) });
      recorder.observe({ type: 'end', id: `slow${i}`, time: T0 + 5 });
    }
    recorder.flush();
    clock += 600;
    recorder.flush();
    // Thousands of the quick program's flows come and go meanwhile.
    for (let i = 0; i < 5000; i++) {
      recorder.observe({ type: 'flow', flow: flow(`quick${i}`, { pid: 8, time: clock }) });
      recorder.observe({ type: 'end', id: `quick${i}`, time: clock + 1 });
      if (i % 500 === 499) recorder.flush();
    }
    expect(lookups).toHaveLength(1);
    lookups.shift()!([late]);
    await new Promise((r) => setImmediate(r));
    recorder.close();
    await sink.close();
    const reader = HistoryReader.open(path);
    const names = reader.flows({ since: 0, limit: 10_000 }).map((f) => f.process.name);
    reader.close();
    expect(names.filter((n) => n === 'late')).toHaveLength(10);
    expect(names.filter((n) => n === 'quick')).toHaveLength(5001);
  });

  it('a program whose lookup answers late gets its traffic: none of it is left under "owner not found"', async () => {
    const path = join(tempDir(), 'history.db');
    const sink = openHistorySink({ path }, { thread: 'inline', onNotice: () => {} });
    let answer: (a: Attribution[]) => void = () => {};
    let clock = T0;
    const recorder = new HistoryRecorder({ write: (b) => sink.write(b), resolve: () => new Promise((r) => (answer = r)), flushMs: 60_000, now: () => clock });
    // A short flow (ended before the answer) and a long one (still open, more bytes after it).
    recorder.observe({ type: 'flow', flow: flow('short') });
    recorder.observe({ type: 'flow', flow: flow('long', { local: { address: '10.0.0.1', port: 40001 } }) });
    recorder.flush();
    clock += 600;
    recorder.observe({ type: 'bytes', time: clock, counters: [{ id: 'short', rx: 3_000_000, tx: 500 }, { id: 'long', rx: 1000, tx: 100 }] });
    recorder.observe({ type: 'end', id: 'short', time: clock });
    recorder.flush(); // the rows are written without their program (the lookup outlasted the wait)
    const reader = HistoryReader.open(path);
    expect(reader.flows({ since: 0 })).toHaveLength(2);
    answer([curl('d'.repeat(64))]);
    await new Promise((r) => setImmediate(r));
    clock += 1000;
    recorder.observe({ type: 'bytes', time: clock, counters: [{ id: 'long', rx: 5000, tx: 200 }] });
    recorder.flush();
    recorder.close();
    await sink.close();
    const top = reader.top({ by: 'process', since: 0 });
    expect(top).toEqual([expect.objectContaining({ label: 'curl', rx: 3_005_000, tx: 700, flows: 2 })]);
    expect(reader.flows({ since: 0 }).map((f) => f.process.name)).toEqual(['curl', 'curl']);
    reader.close();
  });

  it('many flows written open, then ended: every row gets its end and bytes (written in chunks and one by one)', async () => {
    const { path, sink, recorder } = setup();
    const ids = Array.from({ length: 150 }, (_, i) => `m${i}`);
    for (const [i, id] of ids.entries()) recorder.observe({ type: 'flow', flow: flow(id, { time: T0 + i, local: { address: '10.0.0.1', port: 20000 + i } }) });
    await settle(recorder); // written open
    recorder.observe({ type: 'bytes', time: T0 + 1000, counters: ids.map((id, i) => ({ id, rx: 100 + i, tx: i })) });
    for (const [i, id] of ids.entries()) recorder.observe({ type: 'end', id, time: T0 + 2000 + i });
    await settle(recorder);
    recorder.close();
    await sink.close();
    const db = new Database(path, { readonly: true });
    const rows = db.prepare('SELECT start, dur, rx, tx FROM flows ORDER BY id').all() as Array<{ start: number; dur: number | null; rx: number; tx: number }>;
    db.close();
    expect(rows).toEqual(ids.map((_, i) => ({ start: T0 + i, dur: 2000, rx: 100 + i, tx: i })));
  });

  it('addresses, hosts and rules are right in every row after the recorder has numbered more texts than it keeps', async () => {
    const { path, sink, recorder } = setup();
    // Each flow a new address; one host and one rule all along (numbered once, then again after
    // the recorder forgets its numbers), and a host that appears only before and after that.
    const count = MAX_TEXT_IDS + 15_000;
    for (let i = 0; i < count; i++) {
      const host = i % 1000 === 0 ? 'rare.example.org' : 'www.example.com';
      recorder.observe({ type: 'flow', flow: flow(`f${i}`, { time: T0 + i, remote: { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 443 }, remoteHost: { name: host, source: 'dns' }, verdict: { action: 'allow', by: 'rule', ruleId: i % 2 ? 'r-odd' : 'r-even' } }) });
      recorder.observe({ type: 'end', id: `f${i}`, time: T0 + i + 5 });
      if (i % 5000 === 4999) await settle(recorder);
    }
    await settle(recorder);
    recorder.close();
    await sink.close();
    const db = new Database(path, { readonly: true });
    const rows = db.prepare(`SELECT a.addr, h.name AS host, r.rule_id AS rule FROM flows f JOIN addrs a ON a.id = f.raddr
      JOIN hosts h ON h.id = f.host JOIN rules r ON r.id = f.rule ORDER BY f.id`).all() as Array<{ addr: string; host: string; rule: string }>;
    db.close();
    expect(rows).toHaveLength(count);
    const wrong = rows.filter((r, i) => r.addr !== `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` || r.host !== (i % 1000 === 0 ? 'rare.example.org' : 'www.example.com') || r.rule !== (i % 2 ? 'r-odd' : 'r-even'));
    expect(wrong.slice(0, 3)).toEqual([]);
  });

  it('a flow open before recording began: its earlier bytes are not counted as traffic now', async () => {
    const { path, sink, recorder } = setup();
    recorder.observe({ type: 'flow', flow: flow('old') }, true);
    recorder.observe({ type: 'bytes', time: T0, counters: [{ id: 'old', rx: 1_000_000, tx: 1000 }] });
    recorder.observe({ type: 'flow', flow: flow('new') });
    recorder.observe({ type: 'bytes', time: T0, counters: [{ id: 'new', rx: 700, tx: 70 }] });
    await settle(recorder);
    recorder.observe({ type: 'bytes', time: T0 + 1000, counters: [{ id: 'old', rx: 1_005_000, tx: 1500 }] });
    recorder.observe({ type: 'end', id: 'old', time: T0 + 1000 });
    await settle(recorder);
    recorder.close();
    await sink.close();
    const reader = HistoryReader.open(path);
    expect(reader.top({ by: 'process', since: 0 })[0]).toMatchObject({ rx: 5700, tx: 570, flows: 2 });
    expect(reader.flows({ since: 0 }).map((f) => f.rx).sort()).toEqual([1_005_000, 700]);
    reader.close();
  });

  it('refuses a file that is not a history and leaves it as it was', () => {
    const dir = tempDir();
    const text = join(dir, 'notes.db');
    writeFileSync(text, 'my notes, not a database\n'.repeat(20));
    expect(() => openHistoryDatabase(text)).toThrow(/not a SQLite database; flowtop leaves it alone/);
    expect(readFileSync(text, 'utf8')).toBe('my notes, not a database\n'.repeat(20));
    const foreign = join(dir, 'other.db');
    const other = new Database(foreign);
    other.exec('CREATE TABLE things (x); INSERT INTO things VALUES (1)');
    other.close();
    const before = readFileSync(foreign);
    expect(() => openHistoryDatabase(foreign)).toThrow(HistoryRefused);
    expect(() => openHistoryDatabase(foreign)).toThrow(/another program/);
    expect(readFileSync(foreign).equals(before)).toBe(true);
    // Damaged: a real history with its page 2 overwritten.
    const damaged = join(dir, 'damaged.db');
    const db = openHistoryDatabase(damaged);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const bytes = readFileSync(damaged);
    bytes.fill(0xa5, 4096, 4096 * 3);
    writeFileSync(damaged, bytes);
    const notices: WriterNotice[] = [];
    const sink = openHistorySink({ path: damaged }, { thread: 'inline', onNotice: (n) => notices.push(n) });
    sink.write({ rows: [], changes: [], processes: [], hosts: [] });
    expect(notices).toEqual([{ type: 'refused', message: expect.stringMatching(/damaged.*leaves it alone/) }]);
    expect(readFileSync(damaged).equals(bytes)).toBe(true);
  });

  it('a file of schema 1 (start in its own indexed column) is read as it is, and converted when a writer opens it', () => {
    const path = join(tempDir(), 'history.db');
    openHistoryDatabase(path).close();
    // The flows table as schema 1 made it; two flows in one millisecond.
    const raw = new Database(path);
    raw.exec(`DROP TABLE flows;
      CREATE TABLE flows (id INTEGER PRIMARY KEY, start INTEGER NOT NULL, dur INTEGER, ident INTEGER, trust INTEGER NOT NULL, uid INTEGER, parent INTEGER,
        kind INTEGER NOT NULL, raddr INTEGER NOT NULL, rport INTEGER NOT NULL, host INTEGER, verdict INTEGER NOT NULL, rule INTEGER, rx INTEGER, tx INTEGER);
      CREATE INDEX flows_by_start ON flows(start); CREATE INDEX flows_by_ident ON flows(ident, start);
      INSERT INTO addrs (id, addr) VALUES (1, '192.0.2.9');`);
    const insert = raw.prepare('INSERT INTO flows (start, dur, trust, kind, raddr, rport, verdict, rx, tx) VALUES (?, 500, 3, 0, 1, 443, 5, ?, 0)');
    for (const [start, rx] of [[T0, 1], [T0 + 60_000, 2], [T0, 3], [T0 + 120_000, 4]] as const) insert.run(start, rx);
    raw.pragma('user_version = 1');
    raw.close();
    const readAll = (): Array<[number, number | undefined]> => {
      const reader = HistoryReader.open(path);
      try {
        return reader.flows({ since: T0, until: T0 + 120_000 }).map((f) => [f.start, f.rx]);
      } finally {
        reader.close();
      }
    };
    const expected = [[T0 + 60_000, 2], [T0, 3], [T0, 1]];
    expect(readAll()).toEqual(expected);
    // A writer converts it: same flows, same starts, the start index gone.
    const db = openHistoryDatabase(path);
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    expect((db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'flows'").all() as Array<{ name: string }>).map((r) => r.name)).toEqual(['flows_by_ident']);
    new HistoryWriter(db).write({ rows: [{ ref: 1, start: T0, end: T0 + 10, facts: { trust: 3 }, kind: 0, raddr: '192.0.2.9', rport: 443, verdict: 5, rx: 5, tx: 0 }], changes: [], processes: [], hosts: [] });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    expect(readAll()).toEqual([[T0 + 60_000, 2], [T0, 5], [T0, 3], [T0, 1]]);
    // A file of a schema newer than this flowtop knows is refused, for writing and for reading, and left alone.
    const newer = new Database(path);
    newer.pragma('user_version = 3');
    newer.close();
    const said = /written by a newer flowtop \(history schema 3, this one knows 2\); it is left alone/;
    expect(() => openHistoryDatabase(path)).toThrow(said);
    expect(() => HistoryReader.open(path)).toThrow(said);
    expect(new Database(path, { readonly: true }).pragma('user_version', { simple: true })).toBe(3);
  });

  it('prunes by age and by size in steps, and the file shrinks', () => {
    const path = join(tempDir(), 'history.db');
    const db = openHistoryDatabase(path);
    const day = 24 * 3600_000;
    const now = T0;
    const writer = new HistoryWriter(db, { maxAgeMs: 2 * day, maxBytes: 2 * 1024 * 1024 });
    const facts = { key: 'path:/usr/bin/x', name: 'x', path: '/usr/bin/x', trust: 1 };
    // 160,000 flows over the last 9 days: enough that pruning frees more than the pages kept free.
    for (let batch = 0; batch < 80; batch++) {
      const rows = Array.from({ length: 2000 }, (_, i) => ({ ref: batch * 2000 + i, start: now - 9 * day + (batch * 2000 + i) * 4_800, end: now, facts, kind: 0, raddr: `10.0.${batch}.${i % 250}`, rport: 443, verdict: 1, rx: 1000, tx: 100 }));
      writer.write({ rows, changes: [], processes: [], hosts: [] }, now);
    }
    const count = (): number => (db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;
    expect(count()).toBe(160_000);
    const fileBytes = (): number => (db.pragma('page_count', { simple: true }) as number) * 4096;
    const before = fileBytes();
    let steps = 0;
    while (writer.pruneStep(now) && steps < 1000) steps++;
    expect(steps).toBeGreaterThan(1); // in several small steps
    const oldest = (db.prepare('SELECT min(start) AS s FROM flows').get() as { s: number }).s;
    expect(oldest).toBeGreaterThanOrEqual(now - 2 * day);
    expect(writer.usedBytes()).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(count()).toBeGreaterThan(0);
    // Shrinks: free pages go back to the file system in steps, until fewer than 1,024 (4 MiB) are left free.
    expect(fileBytes()).toBeLessThan(before);
    expect(fileBytes() - writer.usedBytes()).toBeLessThan(1024 * 4096);
    db.close();
  });

  it('a full disk is reported once, later batches are dropped and counted, recording resumes when space returns', async (ctx) => {
    if (process.getuid?.() !== 0) {
      if (process.env['CI'] === 'true') throw new Error('needs root to mount a small tmpfs');
      return ctx.skip();
    }
    const dir = tempDir();
    const mnt = join(dir, 'small');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
    try {
      const path = join(mnt, 'history.db');
      const notices: WriterNotice[] = [];
      const state = new HistoryState(path);
      const sink = openHistorySink({ path, retryMs: 100 }, { thread: 'inline', onNotice: (n) => { notices.push(n); state.notice(n); } });
      const filler = join(mnt, 'filler');
      const facts = { key: 'path:/usr/bin/x', trust: 1 };
      let ref = 0;
      const batch = () => ({ rows: Array.from({ length: 500 }, () => ({ ref: ++ref, start: Date.now(), facts, kind: 0, raddr: `10.1.${ref >> 8 & 255}.${ref & 255}`, rport: 443, verdict: 1 })), changes: [], processes: [], hosts: [] });
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4k', 'count=1000'], { stdio: 'ignore' }); // fills what is left
      for (let i = 0; i < 30; i++) sink.write(batch());
      const problems = notices.filter((n) => n.type === 'problem');
      expect(problems).toHaveLength(1);
      expect((problems[0] as { message: string }).message).toMatch(/full/i);
      // What `flowtop agent --status` says meanwhile.
      expect(state.read(0)).toMatchObject({ path, state: 'failing', reason: expect.stringMatching(/full/i) });
      rmSync(filler);
      await new Promise((r) => setTimeout(r, 150));
      sink.write(batch());
      expect(notices.filter((n) => n.type === 'recovered')).toEqual([{ type: 'recovered', lostBatches: expect.any(Number), lostFlows: expect.any(Number) }]);
      expect(state.read(0)).toMatchObject({ state: 'recording' });
      expect(state.read(0).reason).toBeUndefined();
      await sink.close();
      // Every flow sent is counted once, written or lost.
      const { lostFlows } = notices.find((n) => n.type === 'recovered') as { lostFlows: number };
      const counted = state.read(0);
      expect(counted.lost).toBe(lostFlows);
      expect(counted.lost).toBeGreaterThan(0);
      expect(counted.written + counted.lost).toBe(31 * 500);
      expect(counted.bytes).toBeGreaterThan(0);
      const reader = HistoryReader.open(path);
      expect(reader.flowCount()).toBeGreaterThan(0);
      reader.close();
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
