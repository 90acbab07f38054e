// The processes view's recent-traffic series, from the table's own byte counters.
import { describe, expect, it } from 'vitest';
import { initialTable, reduce, type TableAction } from '../../src/state/reducer.js';
import { processKey } from '../../src/state/derive.js';
import { ProcessTraffic } from '../../src/state/process-traffic.js';
import type { TableState } from '../../src/state/types.js';
import { ev, flow, hello, secure, token } from './fixtures.js';

function run(state: TableState, ...actions: TableAction[]): TableState {
  return actions.reduce(reduce, state);
}

describe('ProcessTraffic', () => {
  it("puts each program's new bytes in the step they moved in, and not what moved before it looked", () => {
    const a = flow({ token: token(1) });
    const b = flow({ token: token(2) });
    const c = flow({ token: token(1) });
    let s = run(initialTable(), { type: 'tick', now: 10_000 }, { type: 'events', events: [ev(hello()), ev({ type: 'flow', flow: a }), ev({ type: 'flow', flow: b })] });
    s = run(s, { type: 'attributions', updates: [{ key: token(1), attribution: secure('curl') }, { key: token(2), attribution: secure('wget') }] });
    s = run(s, { type: 'events', events: [ev({ type: 'bytes', time: 10_000, counters: [{ id: a.id, rx: 5_000, tx: 0 }] })] });
    const traffic = new ProcessTraffic({ stepMs: 10_000, steps: 6, sampleMs: 1_000 });
    expect(traffic.sample(s)).toBe(true); // baseline: the 5,000 bytes are from before
    const curl = processKey(secure('curl'));
    const wget = processKey(secure('wget'));
    expect(traffic.recent(curl, s.now)).toEqual([0, 0, 0, 0, 0, 0]);

    s = run(s, { type: 'tick', now: 21_000 }, { type: 'events', events: [ev({ type: 'bytes', time: 21_000, counters: [{ id: a.id, rx: 6_000, tx: 500 }, { id: b.id, rx: 40, tx: 2 }] })] });
    traffic.sample(s);
    s = run(s, { type: 'tick', now: 41_000 }, { type: 'events', events: [ev({ type: 'flow', flow: c }), ev({ type: 'bytes', time: 41_000, counters: [{ id: c.id, rx: 300, tx: 0 }] })] });
    expect(traffic.sample(s)).toBe(true);
    // Steps of 10 s ending at 41 s: [-10..0) … [40..50). curl moved 1,500 at 21 s and 300 at 41 s.
    expect(traffic.recent(curl, s.now)).toEqual([0, 0, 0, 1_500, 0, 300]);
    expect(traffic.recent(wget, s.now)).toEqual([0, 0, 0, 42, 0, 0]);
    // A minute on, quiet: the old steps have scrolled off.
    expect(traffic.recent(curl, 101_000)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('samples at most once per interval', () => {
    const traffic = new ProcessTraffic({ sampleMs: 2_000 });
    const s = run(initialTable(), { type: 'tick', now: 5_000 });
    expect(traffic.sample(s)).toBe(true);
    expect(traffic.sample(run(s, { type: 'tick', now: 6_000 }))).toBe(false);
    expect(traffic.sample(run(s, { type: 'tick', now: 7_000 }))).toBe(true);
  });
});
