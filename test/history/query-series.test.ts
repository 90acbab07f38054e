// The queries behind the history view's sparklines and drill-down, against a file written by the
// real writer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { HistoryReader } from '../../src/history/query.js';
import { openHistoryDatabase } from '../../src/history/schema.js';
import { HistoryWriter } from '../../src/history/writer.js';
import { program, writeConnections } from './helpers/fixture.js';

const require_ = createRequire(import.meta.url);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-query-'));
  dirs.push(d);
  return join(d, 'history.db');
}

const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);
const MIN = 60_000;
const curl = program('curl');
const wget = program('wget');

describe('series', () => {
  it('sums each key per step, oldest first, only the keys asked for (the no-owner bucket as "")', () => {
    const path = file();
    writeConnections(path, [
      { at: NOW - 50 * MIN, program: curl, host: 'a.example', rx: 100, tx: 1 },
      { at: NOW - 49 * MIN, program: curl, host: 'a.example', rx: 200, tx: 2 },
      { at: NOW - 5 * MIN, program: curl, host: 'b.example', rx: 1000, tx: 3 },
      { at: NOW - 5 * MIN, program: wget, host: 'b.example', rx: 7, tx: 0 },
      { at: NOW - 30 * MIN, host: 'c.example', rx: 50, tx: 0 },
    ], NOW);
    const reader = HistoryReader.open(path);
    const s = reader.series({ by: 'process', since: NOW - 60 * MIN, until: NOW, points: 6, keys: [curl.key, ''] });
    expect(s.stepMs).toBe(10 * MIN);
    expect(s.rx.get(curl.key)).toEqual([0, 300, 0, 0, 0, 1000]);
    expect(s.tx.get(curl.key)).toEqual([0, 3, 0, 0, 0, 3]);
    expect(s.rx.get('')).toEqual([0, 0, 0, 50, 0, 0]);
    expect(s.rx.has(wget.key)).toBe(false);
    const hosts = reader.series({ by: 'host', since: NOW - 60 * MIN, until: NOW, points: 6, keys: ['b.example'] });
    expect(hosts.rx.get('b.example')).toEqual([0, 0, 0, 0, 0, 1007]);
    expect([...hosts.rx.keys()]).toEqual(['b.example']);
    expect(reader.series({ by: 'host', since: NOW - 60 * MIN, until: NOW, points: 6, keys: [] }).rx.size).toBe(0);
    reader.close();
  });

  it('the newest mark is one step long, holding only the step now is in, when the window does not start on the hour (programs, and a program\'s hosts)', () => {
    // 7 days in 42 marks is 4 h a mark; the window starts 5 minutes past an hour, so a grid laid
    // forward from that hour needs 43 steps, and the newest two (here 15:00–19:00 and 19:00–23:00)
    // were drawn as one mark.
    const now = Date.UTC(2026, 11, 5, 19, 5, 0);
    const path = file();
    writeConnections(path, [
      { at: Date.UTC(2026, 11, 5, 18, 52, 0), program: curl, host: 'a.example', rx: 3000, tx: 0 },
      { at: Date.UTC(2026, 11, 5, 19, 2, 0), program: curl, host: 'a.example', rx: 6000, tx: 0 },
      { at: Date.UTC(2026, 11, 5, 15, 5, 30), program: curl, host: 'a.example', rx: 500, tx: 0 },
      { at: now - 7 * 24 * 60 * MIN + 2 * MIN, program: curl, host: 'a.example', rx: 1, tx: 0 },
    ], now);
    const reader = HistoryReader.open(path);
    const s = reader.series({ by: 'process', since: now + 1 - 7 * 24 * 60 * MIN, until: now + 1, points: 42 });
    expect(s.stepMs).toBe(4 * 60 * MIN);
    const curve = s.rx.get(curl.key)!;
    expect(curve).toHaveLength(42);
    // The last step ends at the end of the hour now is in, and holds what started in it only.
    expect(s.start + 42 * s.stepMs).toBe(Date.UTC(2026, 11, 5, 20, 0, 0));
    expect(curve.at(-1)).toBe(9000);
    expect(curve.at(-2)).toBe(500);
    // The oldest step takes in the start of the window it would otherwise leave out.
    expect(curve[0]).toBe(1);
    expect(curve.reduce((a, b) => a + b, 0)).toBe(9501);
    // The same for a program's hosts (read from its flows, in steps of whole minutes).
    const drill = reader.hostsOf({ identity: curl.key, since: now + 1 - 7 * 24 * 60 * MIN, until: now + 1, points: 42 });
    const hostCurve = drill.series.rx.get('a.example')!;
    expect(drill.series.stepMs).toBe(4 * 60 * MIN);
    expect(hostCurve).toHaveLength(42);
    expect(hostCurve.at(-1)).toBe(9000);
    expect(hostCurve.at(-2)).toBe(500);
    expect(hostCurve.reduce((a, b) => a + b, 0)).toBe(9501);
    reader.close();
  });

  it('gives a window shorter than the points asked one point per minute, the last one holding the newest minute', () => {
    const path = file();
    writeConnections(path, [{ at: NOW - 30_000, program: curl, host: 'a.example', rx: 9, tx: 0 }], NOW);
    const reader = HistoryReader.open(path);
    const s = reader.series({ by: 'process', since: NOW - 60 * MIN, until: NOW, points: 100 });
    const curve = s.rx.get(curl.key)!;
    expect(curve).toHaveLength(60);
    expect(curve.at(-1)).toBe(9);
    reader.close();
  });
});

describe('hostsOf', () => {
  it("ranks the hosts one program talked to by bytes, with each host's traffic over the window", () => {
    const path = file();
    writeConnections(path, [
      { at: NOW - 50 * MIN, program: curl, host: 'small.example', rx: 10, tx: 0 },
      { at: NOW - 20 * MIN, program: curl, host: 'big.example', rx: 5000, tx: 50 },
      { at: NOW - 10 * MIN, program: curl, host: 'big.example', rx: 5000, tx: 50 },
      { at: NOW - 10 * MIN, program: curl, addr: '198.51.100.9', rx: 70, tx: 0 },
      { at: NOW - 10 * MIN, program: wget, host: 'other.example', rx: 99999, tx: 0 },
      { at: NOW - 2 * 3600_000, program: curl, host: 'old.example', rx: 99999, tx: 0 },
    ], NOW);
    const reader = HistoryReader.open(path);
    const { hosts, series } = reader.hostsOf({ identity: curl.key, since: NOW - 60 * MIN, until: NOW, points: 6 });
    expect(hosts.map((h) => [h.key, h.rx + h.tx, h.flows])).toEqual([['big.example', 10100, 2], ['198.51.100.9', 70, 1], ['small.example', 10, 1]]);
    expect(series.rx.get('big.example')).toEqual([0, 0, 0, 0, 5000, 5000]);
    expect(series.rx.get('small.example')).toEqual([0, 10, 0, 0, 0, 0]);
    const nobody = reader.hostsOf({ identity: '', since: NOW - 60 * MIN, until: NOW, points: 6 });
    expect(nobody.hosts).toEqual([]);
    reader.close();
  });
});

describe('hourly and daily buckets', () => {
  // Connections spread over three days, at minutes that are not on the hour, so a window's edges cut hours.
  const spread = () => {
    const out = [];
    for (let i = 0; i < 300; i++) out.push({ at: NOW - 3 * 24 * 60 * MIN + i * 14 * MIN + 7_000, program: i % 3 ? curl : wget, host: i % 2 ? 'a.example' : 'b.example', rx: 1000 + i, tx: i });
    return out;
  };

  it('give the same rankings and curves as the minutes, window edges inside an hour and a day included', () => {
    const path = file();
    writeConnections(path, spread(), NOW);
    const reader = HistoryReader.open(path);
    const since = NOW - 50 * 60 * MIN - 23 * MIN;
    const until = NOW - 2 * 60 * MIN - 41 * MIN;
    const inWindow = spread().filter((c) => Math.floor(c.at / MIN) >= Math.floor(since / MIN) && Math.floor(c.at / MIN) < Math.ceil(until / MIN));
    const sum = (xs: typeof inWindow) => xs.reduce((a, c) => a + c.rx + c.tx, 0);
    const top = reader.top({ by: 'process', since, until });
    expect(top.find((e) => e.key === curl.key)).toMatchObject({ flows: inWindow.filter((c) => c.program === curl).length });
    expect(top.find((e) => e.key === curl.key)!.rx + top.find((e) => e.key === curl.key)!.tx).toBe(sum(inWindow.filter((c) => c.program === curl)));
    expect(reader.top({ by: 'host', since, until }).reduce((a, e) => a + e.rx + e.tx, 0)).toBe(sum(inWindow));
    // 12 steps: whole hours (4 h); 2 steps: whole days; 100 steps: minutes (29 min).
    for (const [points, unit] of [[12, 60 * MIN], [2, 24 * 60 * MIN], [100, MIN]] as const) {
      const s = reader.series({ by: 'process', since, until, points });
      expect(s.stepMs % unit).toBe(0);
      expect(s.start % unit).toBe(0);
      const curve = s.rx.get(curl.key)!.map((v, i) => v + s.tx.get(curl.key)![i]!);
      // Every step holds the connections that started in it (the first and last also what the window cut).
      for (let i = 0; i < curve.length; i++) {
        const from = s.start + i * s.stepMs;
        const to = from + s.stepMs;
        const expected = sum(inWindow.filter((c) => c.program === curl && (i === 0 || c.at >= from) && (i === curve.length - 1 || c.at < to)));
        expect(curve[i], `step ${i} of ${points}`).toBe(expected);
      }
      expect(curve.reduce((a, b) => a + b, 0)).toBe(sum(inWindow.filter((c) => c.program === curl)));
    }
    reader.close();
  });

  it('are made from the minutes when a file written before them is opened for writing; a reader of such a file sums its minutes', () => {
    const path = file();
    writeConnections(path, spread(), NOW);
    const Database = require_('better-sqlite3') as new (p: string) => { exec(sql: string): void; close(): void };
    const raw = new Database(path);
    raw.exec('DROP TABLE traffic_hour; DROP TABLE host_traffic_hour; DROP TABLE traffic_day; DROP TABLE host_traffic_day;');
    raw.close();
    const since = NOW - 3 * 24 * 60 * MIN;
    const old = HistoryReader.open(path);
    const before = old.top({ by: 'process', since, until: NOW });
    old.close();
    writeConnections(path, [], NOW); // opens it for writing
    const reader = HistoryReader.open(path);
    expect(reader.top({ by: 'process', since, until: NOW })).toEqual(before);
    reader.close();
  });

  it('go with the minutes when they pass the retention age', () => {
    const path = file();
    writeConnections(path, [{ at: NOW - 40 * 24 * 60 * MIN, program: curl, host: 'old.example', rx: 5, tx: 5 }, { at: NOW - MIN, program: curl, host: 'new.example', rx: 7, tx: 0 }], NOW);
    const db = openHistoryDatabase(path);
    const writer = new HistoryWriter(db);
    while (writer.pruneStep(NOW)) { /* steps until done */ }
    const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    expect([count('traffic_day'), count('traffic_hour'), count('host_traffic_day'), count('host_traffic_hour')]).toEqual([1, 1, 1, 1]);
    db.close();
  });
});

describe('hostsOf, capped', () => {
  it("reads only a program's newest connections when asked for fewer, saying from when", () => {
    const path = file();
    writeConnections(path, [
      { at: NOW - 50 * MIN, program: curl, host: 'old.example', rx: 10, tx: 0 },
      { at: NOW - 40 * MIN, program: curl, host: 'mid.example', rx: 10, tx: 0 },
      { at: NOW - 30 * MIN, program: wget, host: 'wget.example', rx: 10, tx: 0 },
      { at: NOW - 20 * MIN, program: curl, host: 'new.example', rx: 10, tx: 0 },
    ], NOW);
    const reader = HistoryReader.open(path);
    const capped = reader.hostsOf({ identity: curl.key, since: NOW - 60 * MIN, until: NOW, points: 6, maxFlows: 2 });
    expect(capped.hosts.map((h) => h.key).sort()).toEqual(['mid.example', 'new.example']);
    expect(capped.since).toBe(NOW - 50 * MIN + 1);
    const whole = reader.hostsOf({ identity: curl.key, since: NOW - 60 * MIN, until: NOW, points: 6, maxFlows: 3 });
    expect(whole.hosts).toHaveLength(3);
    expect(whole.since).toBeUndefined();
    reader.close();
  });
});
