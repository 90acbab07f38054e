// The queries behind the history view's sparklines and drill-down, against a file written by the
// real writer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HistoryReader } from '../../src/history/query.js';
import { program, writeConnections } from './helpers/fixture.js';

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
