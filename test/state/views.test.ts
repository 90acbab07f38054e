import { describe, expect, it } from 'vitest';
import { initialTable, reduce } from '../../src/state/reducer.js';
import { FlowSorter, sortFlows, sortStats } from '../../src/state/sort.js';
import { FlowFilter } from '../../src/state/filter.js';
import { FlowsSelector, selectProcesses, visibleWindow } from '../../src/state/views.js';
import { displayName } from '../../src/state/derive.js';
import type { TableState } from '../../src/state/types.js';
import { ev, flow, insecure, secure, token } from './fixtures.js';

const NAMES = ['curl', 'firefox', 'sshd', 'git', 'node'];

function table(n: number): TableState {
  let s = initialTable({ maxFlows: n * 2 });
  const events = Array.from({ length: n }, (_, i) =>
    ev({ type: 'flow', flow: flow({ id: `f${i}`, time: 10_000 + i, token: token(i % NAMES.length), remote: { address: `10.1.${i % 7}.${i % 250}`, port: 443 } }) }),
  );
  s = reduce(s, { type: 'events', events });
  return reduce(s, {
    type: 'attributions',
    updates: NAMES.map((name, i) => ({ key: token(i), attribution: name === 'sshd' ? insecure(name) : secure(name) })),
  });
}

describe('sorting', () => {
  it('sorts by column and reverses', () => {
    const s = table(20);
    const byName = sortFlows(s.flows.values(), { column: 'process', reverse: false }).map(displayName);
    expect(byName[0]).toBe('curl');
    expect(byName.at(-1)).toBe('sshd');
    const reversed = sortFlows(s.flows.values(), { column: 'process', reverse: true }).map(displayName);
    expect(reversed[0]).toBe('sshd');
    const byAge = sortFlows(s.flows.values(), { column: 'age', reverse: false });
    expect(byAge[0]!.flow.id).toBe('f19');
    const byTrust = sortFlows(s.flows.values(), { column: 'trust', reverse: false });
    expect(byTrust[0]!.attribution.trust).toBe('insecure');
  });

  it('incremental sort gives the same order as a full sort after changes', () => {
    let s = table(2_000);
    const sorter = new FlowSorter();
    const spec = { column: 'rate' as const, reverse: false };
    sorter.sorted(s, spec);
    expect(sorter.lastWork).toBe('full');
    const counters = Array.from({ length: 200 }, (_, i) => ({ id: `f${i * 7}`, rx: (i * 7919) % 10_000, tx: i }));
    s = reduce(s, { type: 'events', events: [ev({ type: 'bytes', time: 20_000, counters }), ev({ type: 'flow', flow: flow({ id: 'new', time: 1 }) }), ev({ type: 'end', id: 'f3', time: 20_000 })] });
    const incremental = sorter.sorted(s, spec).map((r) => r.key);
    expect(sorter.lastWork).toBe('incremental');
    expect(incremental).toEqual(sortFlows(s.flows.values(), spec).map((r) => r.key));
    sorter.sorted(s, spec);
    expect(sorter.lastWork).toBe('cached');
  });
});

describe('the incremental sort\'s safety net', () => {
  it('never shows a row the table no longer holds, even if a change were missed: it sorts again', () => {
    let s = table(50);
    const sorter = new FlowSorter();
    const spec = { column: 'age' as const, reverse: false };
    sorter.sorted(s, spec);
    s = reduce(s, { type: 'events', events: [ev({ type: 'flow', flow: flow({ id: 'new', time: 1 }) })] });
    // a row leaves the table without a journal entry: what a missed change would look like
    const [lost] = s.flows.keys();
    (s.flows as Map<string, unknown>).delete(lost!);
    const before = sortStats.repaired;
    const rows = sorter.sorted(s, spec).map((r) => r.key);
    expect(rows).toEqual(sortFlows(s.flows.values(), spec).map((r) => r.key));
    expect(rows).not.toContain(lost);
    expect(sortStats.repaired).toBe(before + 1);
  });
});

describe('the sort of a table the reducer has moved on from', () => {
  // The flow Map and the journal are updated in place, so a state sorted after the reducer moved on
  // (a key handled against the state last drawn), or an older state after a newer one, already holds
  // the later rows. The sorter inserted them in that sort and again in the next (without the safety
  // net: late-b and late-c shown twice).
  const add = (s: TableState, id: string, time: number): TableState => reduce(s, { type: 'events', events: [ev({ type: 'flow', flow: flow({ id, time }) })] });
  const keysOf = (rows: readonly { key: string }[]) => rows.map((r) => r.key);

  it('shows each row once when a state is sorted after the next step was reduced', () => {
    const spec = { column: 'age' as const, reverse: false };
    const s1 = table(20);
    const sorter = new FlowSorter();
    sorter.sorted(s1, spec);
    const s2 = add(s1, 'late-a', 20_001);
    const s3 = add(add(s2, 'late-b', 20_002), 'late-c', 20_003);
    const before = sortStats.repaired;
    // s2 rendered after s3 was reduced: it already holds late-b and late-c.
    expect(keysOf(sorter.sorted(s2, spec))).toEqual(keysOf(sortFlows(s2.flows.values(), spec)));
    const rows = keysOf(sorter.sorted(s3, spec));
    expect(rows).toEqual(keysOf(sortFlows(s3.flows.values(), spec)));
    expect(new Set(rows).size).toBe(rows.length);
    // Right from the journal, not put right by the safety net.
    expect(sortStats.repaired).toBe(before);
    expect(sorter.lastWork).not.toBe('full');
  });

  it('shows each row once when an older state is sorted after a newer one', () => {
    const spec = { column: 'rate' as const, reverse: false };
    const s1 = table(20);
    const sorter = new FlowSorter();
    sorter.sorted(s1, spec);
    const s2 = add(s1, 'late-a', 20_001);
    const s3 = reduce(add(s2, 'late-b', 20_002), { type: 'events', events: [ev({ type: 'bytes', time: 20_000, counters: [{ id: 'f3', rx: 5_000, tx: 0 }] })] });
    const before = sortStats.repaired;
    sorter.sorted(s3, spec);
    sorter.sorted(s2, spec); // a frame of the older state, after the newer one
    const s4 = add(s3, 'late-c', 20_003);
    const rows = keysOf(sorter.sorted(s4, spec));
    expect(rows).toEqual(keysOf(sortFlows(s4.flows.values(), spec)));
    expect(new Set(rows).size).toBe(rows.length);
    expect(sortStats.repaired).toBe(before);
    expect(sorter.lastWork).toBe('incremental');
  });
});

describe('filter', () => {
  it('matches process names, paths and hosts fuzzily, and narrows as you type', () => {
    const s = table(50);
    const f = new FlowFilter();
    const count = (query: string) => [...s.flows.values()].filter(f.predicate(s, { query, onlyInsecure: false }) ?? (() => true)).length;
    expect(count('')).toBe(50);
    expect(count('fire')).toBe(10);
    expect(count('frefox')).toBe(10); // a typo still finds it
    expect(count('firefox')).toBe(10);
    expect(count('/usr/sbin')).toBe(10);
    expect(count('10.1.3.')).toBe(7);
    expect(count('zzzzqqq')).toBe(0);
  });

  it('"only not-secure" keeps insecure flows', () => {
    const s = table(50);
    const keep = new FlowFilter().predicate(s, { query: '', onlyInsecure: true })!;
    const rows = [...s.flows.values()].filter(keep);
    expect(rows.length).toBe(10);
    expect(rows.every((r) => r.attribution.name === 'sshd')).toBe(true);
  });

  it('selector: sorted, then filtered', () => {
    const s = table(50);
    const rows = new FlowsSelector().select(s, { sort: { column: 'age', reverse: true }, filter: { query: 'git', onlyInsecure: false } });
    expect(rows.length).toBe(10);
    expect(rows[0]!.flow.time).toBeLessThan(rows[9]!.flow.time);
  });
});

describe('processes view', () => {
  it('aggregates per identity, not per PID', () => {
    let s = table(10);
    // Same code (identity) in another process instance: still one row.
    s = reduce(s, { type: 'events', events: [ev({ type: 'flow', flow: flow({ id: 'x', token: token(99) }) })] });
    s = reduce(s, { type: 'attributions', updates: [{ key: token(99), attribution: secure('curl', { pid: 555 }) }] });
    const rows = selectProcesses(s, { sort: { column: 'process', reverse: false }, filter: { query: '', onlyInsecure: false } });
    expect(rows.map((r) => r.name)).toEqual(['curl', 'firefox', 'git', 'node', 'sshd']);
    expect(rows[0]).toMatchObject({ live: 3, pids: 2 });
  });
});

describe('visible window', () => {
  it('keeps the cursor in view with the fewest jumps', () => {
    expect(visibleWindow(100, 0, 10, 0)).toEqual({ top: 0, cursor: 0 });
    expect(visibleWindow(100, 15, 10, 0)).toEqual({ top: 6, cursor: 15 });
    expect(visibleWindow(100, 8, 10, 6)).toEqual({ top: 6, cursor: 8 });
    expect(visibleWindow(100, 3, 10, 6)).toEqual({ top: 3, cursor: 3 });
    expect(visibleWindow(5, 9, 10, 3)).toEqual({ top: 0, cursor: 4 });
  });
});

describe('incremental sort under random changes', () => {
  it('always equals a full sort, for every column and direction', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const column of ['age', 'rate', 'rx', 'tx', 'process', 'state', 'trust', 'remote', 'host'] as const) {
      for (const reverse of [false, true]) {
        let s = table(300);
        const sorter = new FlowSorter();
        let nextId = 1_000;
        for (let step = 0; step < 30; step++) {
          const events = [];
          for (let k = 0; k < 10; k++) {
            const id = `f${rand(300)}`;
            const pick = rand(4);
            if (pick === 0) events.push(ev({ type: 'flow', flow: flow({ id: `n${nextId++}`, time: 10_000 + rand(500), token: token(rand(5)) }) }));
            if (pick === 1) events.push(ev({ type: 'end', id, time: 30_000 }));
            if (pick === 2) events.push(ev({ type: 'bytes', time: 40_000 + step, counters: [{ id, rx: rand(100_000), tx: rand(100) }] }));
            if (pick === 3) events.push(ev({ type: 'verdict', id, time: 1, verdict: { action: 'block', by: 'user' } }));
          }
          s = reduce(s, { type: 'events', events });
          if (step % 7 === 0) s = reduce(s, { type: 'tick', now: 36_000 + step * 100 });
          // Skip some frames, as the throttled screen does.
          if (rand(3) === 0) continue;
          const got = sorter.sorted(s, { column, reverse }).map((r) => r.key);
          expect(got).toEqual(sortFlows(s.flows.values(), { column, reverse }).map((r) => r.key));
        }
        expect(sorter.lastWork).not.toBe('full');
      }
    }
  });
});
