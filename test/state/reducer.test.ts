import { describe, expect, it } from 'vitest';
import { flowKey, initialTable, reduce, type TableAction } from '../../src/state/reducer.js';
import { selectRules } from '../../src/state/views.js';
import { countFlows, flowPhase, rowRate } from '../../src/state/derive.js';
import type { TableState } from '../../src/state/types.js';
import { ev, flow, hello, insecure, secure, token } from './fixtures.js';

function run(state: TableState, ...actions: TableAction[]): TableState {
  return actions.reduce(reduce, state);
}

describe('flow table reducer', () => {
  it('adds flows, attributes them when the answer arrives, and counts them', () => {
    const f1 = flow({ token: token(1) });
    const f2 = flow({ token: token(2), pending: { deadline: 5_000 } });
    let s = run(initialTable(), { type: 'events', events: [ev(hello()), ev({ type: 'flow', flow: f1 }), ev({ type: 'flow', flow: f2 })] });
    expect(s.flows.size).toBe(2);
    expect(s.flows.get(flowKey('ext', f1.id))!.attribution.trust).toBe('pending');
    s = reduce(s, { type: 'attributions', updates: [{ key: token(1), attribution: secure('curl') }, { key: token(2), attribution: insecure('sshd') }] });
    expect(s.flows.get(flowKey('ext', f1.id))!.attribution.name).toBe('curl');
    const counts = countFlows(s);
    expect(counts).toMatchObject({ live: 2, pending: 1, blocked: 0, secureShare: 0.5 });
  });

  it('a flow without a token is insecure with the extension\'s reason', () => {
    const f = flow({ pid: 42, ownerError: 'socket not found in sock_diag' });
    const s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'flow', flow: f })] });
    const row = s.flows.get(flowKey('ext', f.id))!;
    expect(row.attribution.trust).toBe('insecure');
    expect(row.attribution.reason?.message).toContain('socket not found');
  });

  it('applies verdicts: a pending flow becomes blocked', () => {
    const f = flow({ pending: { deadline: 9 } });
    let s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'flow', flow: f })] });
    expect(flowPhase(s.flows.get(flowKey('ext', f.id))!)).toBe('pending');
    s = reduce(s, { type: 'events', events: [ev({ type: 'verdict', id: f.id, time: 2, verdict: { action: 'block', by: 'user' } })] });
    const row = s.flows.get(flowKey('ext', f.id))!;
    expect(flowPhase(row)).toBe('blocked');
    expect(countFlows(s)).toMatchObject({ pending: 0, blocked: 1 });
  });

  it('closed flows linger, dimmed, then leave', () => {
    const f = flow();
    let s = run(initialTable({ lingerMs: 3_000 }, 1_000), { type: 'events', events: [ev({ type: 'flow', flow: f }), ev({ type: 'end', id: f.id, time: 2_000 })] });
    expect(flowPhase(s.flows.get(flowKey('ext', f.id))!)).toBe('closed');
    s = reduce(s, { type: 'tick', now: 4_000 });
    expect(s.flows.has(flowKey('ext', f.id))).toBe(true);
    s = reduce(s, { type: 'tick', now: 5_001 });
    expect(s.flows.has(flowKey('ext', f.id))).toBe(false);
  });

  it('memory is bounded: closed flows leave first, then the oldest', () => {
    const flows = Array.from({ length: 6 }, () => flow());
    let s = reduce(initialTable({ maxFlows: 4 }), { type: 'events', events: flows.slice(0, 4).map((f) => ev({ type: 'flow', flow: f })) });
    s = reduce(s, { type: 'events', events: [ev({ type: 'end', id: flows[2]!.id, time: 1 })] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'flow', flow: flows[4]! })] });
    expect([...s.flows.values()].map((r) => r.flow.id)).toEqual([flows[0]!.id, flows[1]!.id, flows[3]!.id, flows[4]!.id]);
    s = reduce(s, { type: 'events', events: [ev({ type: 'flow', flow: flows[5]! })] });
    expect(s.flows.size).toBe(4);
    expect(s.flows.has(flowKey('ext', flows[0]!.id))).toBe(false);
    expect(s.evicted).toBe(2);
  });

  it('byte counters give per-flow and total rates', () => {
    const f = flow({ time: 0 });
    let s = run(initialTable({ rateWindowMs: 2_000 }, 1_000), { type: 'events', events: [ev({ type: 'flow', flow: f })] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'bytes', time: 1_000, counters: [{ id: f.id, rx: 1_000, tx: 100 }] })] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'bytes', time: 2_000, counters: [{ id: f.id, rx: 3_000, tx: 300 }] })] });
    const row = s.flows.get(flowKey('ext', f.id))!;
    expect(row.rx).toBe(3_000);
    expect(row.rxRate).toBe(2_000);
    // The first sample was the baseline: only what moved after it is traffic.
    expect(s.totals).toEqual({ rx: 2_000, tx: 200 });
    // The header total is the row's rate (one flow), not an average over a window.
    expect(countFlows(s).rxRate).toBe(2_000);
  });

  it('the first counter sample of a connection is a baseline: no rate until the second', () => {
    // A connection open long before flowtop started, first seen now, with 2 GB moved in its life.
    const old = flow({ time: 50_000 });
    let s = run(initialTable({}, 50_000), { type: 'events', events: [ev({ type: 'flow', flow: old })] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'bytes', time: 50_010, counters: [{ id: old.id, rx: 2_000_000_000, tx: 600_000_000 }] })] });
    let row = s.flows.get(flowKey('ext', old.id))!;
    expect(row.rx).toBe(2_000_000_000);
    expect(rowRate(row, 50_010)).toBe(0);
    expect(countFlows(s)).toMatchObject({ rxRate: 0, txRate: 0 });
    s = reduce(s, { type: 'events', events: [ev({ type: 'bytes', time: 51_010, counters: [{ id: old.id, rx: 2_000_004_000, tx: 600_001_000 }] })] });
    row = s.flows.get(flowKey('ext', old.id))!;
    expect([row.rxRate, row.txRate]).toEqual([4_000, 1_000]);
  });

  it('keeps rules per source and applies rule changes', () => {
    const rule = { id: 'r1', action: 'block' as const, duration: { kind: 'always' as const }, created: 1, hits: 0, enabled: true };
    let s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'rules', rules: [rule] }, 'a'), ev({ type: 'rules', rules: [] }, 'b')] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'rule-changed', op: 'added', rule: { ...rule, id: 'r2' } }, 'b')] });
    expect(s.sources.get('a')!.rules.list().map((r) => r.id)).toEqual(['r1']);
    expect(s.sources.get('b')!.rules.list().map((r) => r.id)).toEqual(['r2']);
    s = reduce(s, { type: 'events', events: [ev({ type: 'rule-changed', op: 'removed', rule }, 'a')] });
    expect(s.sources.get('a')!.rules.list()).toEqual([]);
  });

  it('holds a rule list marked continues until its last part, then shows all of it', () => {
    const rules = Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, action: 'allow' as const, duration: { kind: 'always' as const }, created: 1, hits: 0, enabled: true }));
    let s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'rules', rules: [rules[0]!] })] });
    s = reduce(s, { type: 'events', events: [ev({ type: 'rules', rules: rules.slice(0, 100), continues: true })] });
    // a part is not a list: the one before stays until the list is complete
    expect(selectRules(s).map((r) => r.rule.id)).toEqual(['r0']);
    s = reduce(s, { type: 'events', events: [ev({ type: 'rules', rules: rules.slice(100) })] });
    expect(selectRules(s)).toHaveLength(200);
    expect(selectRules(s).map((r) => r.rule.id)).toEqual(rules.map((r) => r.id));
    // an update keeps the rule's place; a removal and an addition move nothing else
    s = reduce(s, { type: 'events', events: [ev({ type: 'rule-changed', op: 'updated', rule: { ...rules[5]!, hits: 14 } }), ev({ type: 'rule-changed', op: 'removed', rule: rules[0]! })] });
    expect(selectRules(s)[4]!.rule).toMatchObject({ id: 'r5', hits: 14 });
    expect(selectRules(s)).toHaveLength(199);
  });

  it('applies 100,000 rule changes in linear time', () => {
    const rule = (i: number) => ({ id: `r${i}`, action: 'allow' as const, duration: { kind: 'always' as const }, created: 1, hits: i, enabled: true });
    let s = initialTable();
    const started = performance.now();
    // one message per batch, as a flood arrives: every step must be O(1)
    for (let i = 0; i < 50_000; i++) s = reduce(s, { type: 'events', events: [ev({ type: 'rule-changed', op: 'added', rule: rule(i) })] });
    for (let i = 0; i < 50_000; i++) s = reduce(s, { type: 'events', events: [ev({ type: 'rule-changed', op: 'updated', rule: rule(i % 1000) })] });
    const elapsed = performance.now() - started;
    expect(selectRules(s)).toHaveLength(50_000);
    // quadratic was 50,000²/2 ≈ 10⁹ rule copies: minutes; linear is well under a few seconds even on a busy machine
    expect(elapsed).toBeLessThan(5_000);
  });

  it('tracks connection status and the hello per source', () => {
    let s = reduce(initialTable(), { type: 'status', source: 'ext', status: { state: 'connected', hello: hello() } });
    expect(s.sources.get('ext')!.hello?.extension.name).toBe('test-ext');
    s = reduce(s, { type: 'status', source: 'ext', status: { state: 'reconnecting', reason: 'ECONNREFUSED', retryAt: 5, attempt: 1 } });
    expect(s.sources.get('ext')!.status.state).toBe('reconnecting');
    expect(s.sources.get('ext')!.hello).toBeDefined();
  });

  it('keeps "App via helper": the app token is attributed separately', () => {
    const f = flow({ token: token(5), appToken: token(6) });
    let s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'flow', flow: f })] });
    s = reduce(s, { type: 'attributions', updates: [{ key: token(5), attribution: secure('ping') }, { key: token(6), attribution: secure('Terminal') }] });
    const row = s.flows.get(flowKey('ext', f.id))!;
    expect(row.appAttribution?.name).toBe('Terminal');
  });

  it('header rates are the sums of the rows\' rates, per direction', () => {
    const down = flow({ time: 10_000 });
    const up = flow({ time: 10_000 });
    let s = run(initialTable({}, 10_000), { type: 'events', events: [ev({ type: 'flow', flow: down }), ev({ type: 'flow', flow: up })] });
    // Counters once a second, as the passive monitor sends them: one flow receives, one sends. The
    // first sample is the baseline.
    s = run(s, { type: 'events', events: [ev({ type: 'bytes', time: 10_000, counters: [{ id: down.id, rx: 0, tx: 0 }, { id: up.id, rx: 0, tx: 0 }] })] });
    for (let t = 1; t <= 3; t++) {
      s = run(
        s,
        { type: 'tick', now: 10_000 + t * 1000 },
        { type: 'events', events: [ev({ type: 'bytes', time: 10_000 + t * 1000, counters: [{ id: down.id, rx: t * 9_700, tx: 0 }, { id: up.id, rx: 0, tx: t * 9_700 }] })] },
      );
      const rowDown = s.flows.get(flowKey('ext', down.id))!;
      const rowUp = s.flows.get(flowKey('ext', up.id))!;
      expect(rowDown.rxRate).toBeCloseTo(9_700);
      expect(rowUp.txRate).toBeCloseTo(9_700);
      expect(countFlows(s)).toMatchObject({ rxRate: rowDown.rxRate + rowUp.rxRate, txRate: rowDown.txRate + rowUp.txRate });
    }
    // Counters that stop coming stop counting, in the rows and in the header.
    s = run(s, { type: 'tick', now: 10_000 + 3_000 + 6_000 });
    expect(countFlows(s)).toMatchObject({ rxRate: 0, txRate: 0 });
  });
});
