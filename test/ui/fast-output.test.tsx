// The fast frame composition must draw exactly what Ink's own would: same characters in the same
// cells with the same colours. Both render the same screens; the fast result is then passed once
// through Ink's own composition so that only equivalent ways of writing the colour codes differ.
import './helpers/force-color.js';
import { afterAll, describe, expect, it } from 'vitest';
import { render } from 'ink-testing-library';
import type { ReactElement } from 'react';
import type { Attribution } from '../../src/attribution/types.js';
import { initialTable, reduce } from '../../src/state/reducer.js';
import { initialUi, type UiState } from '../../src/state/ui.js';
import { ScreenModeler } from '../../src/app/screen-model.js';
import { Screen } from '../../src/ui/Screen.js';
import { composeLines, composeStats, loadOutputClass, setFastOutput } from '../../src/ui/fast-output.js';
import { ev, flow, hello, insecure, secure, token } from '../state/fixtures.js';

const NOW = 2_000_000;
const ATTRIBUTIONS: Array<[string, Attribution]> = [
  [token(1), secure('curl')],
  [token(2), insecure('sshd')],
  [token(3), { trust: 'gone', pid: 300, name: 'ghost' }],
];

let built: ReturnType<typeof initialTable> | undefined;
function table() {
  if (built) return built;
  let t = initialTable({}, NOW);
  t = reduce(t, { type: 'status', source: 'ext', status: { state: 'connected', hello: hello() } });
  t = reduce(t, { type: 'attributions', updates: ATTRIBUTIONS.map(([key, attribution]) => ({ key, attribution })) });
  const events = [ev(hello())];
  for (let i = 0; i < 40; i++) {
    events.push(ev({ type: 'flow', flow: flow({ token: token((i % 4) + 1), time: NOW - i * 1000, remoteHost: i % 3 ? { name: `host${i}.example`, source: 'dns' } : undefined, ...(i % 7 === 0 ? { pending: { deadline: NOW + 20_000 } } : {}) }) }));
  }
  built = reduce(t, { type: 'events', events });
  return built;
}

function screen(ui: UiState, ascii: boolean, columns: number, rows: number) {
  const t = table();
  const m = new ScreenModeler().model({ ...ui, cursor: { ...ui.cursor, [ui.view]: 2 } }, t, { rows, columns }, 0);
  return (
    <Screen width={columns} height={m.height} ascii={ascii} now={NOW} sources={[...t.sources.values()]} counts={m.counts} ui={ui} flows={m.flows} processes={m.processes} rules={m.rules}
      top={m.top} cursor={m.cursor} sticky={m.sticky} pinned={m.pinned} tableRows={m.tableRows} detailRows={m.detailRows} details={m.details} />
  );
}

async function frameWith(fast: boolean, el: ReactElement): Promise<string> {
  await setFastOutput(fast);
  const r = render(el);
  const frame = r.lastFrame() ?? '';
  r.unmount();
  return frame;
}

/** Ink's own composition of finished lines (its way of writing colour codes). */
async function normalise(frame: string): Promise<string> {
  const Output = (await loadOutputClass()) as unknown as new (o: { width: number; height: number }) => { write(x: number, y: number, text: string, o: { transformers: [] }): void; get(): { output: string } };
  const lines = frame.split('\n');
  const out = new Output({ width: 100, height: lines.length });
  lines.forEach((l, y) => out.write(0, y, l, { transformers: [] }));
  await setFastOutput(false);
  return out.get().output;
}

afterAll(() => setFastOutput(true));

describe('fast frame composition', () => {
  const base = initialUi();
  const cases: Array<[string, UiState, boolean, number]> = [
    ['flows', base, false, 30],
    ['flows ascii', base, true, 30],
    ['details', { ...base, details: true }, false, 30],
    ['details on a short terminal', { ...base, details: true }, false, 16],
    ['processes', { ...base, view: 'processes' }, false, 30],
    ['help', { ...base, help: true }, false, 30],
    ['filter typing', { ...base, editingFilter: true, filter: { ...base.filter, query: 'cu' } }, false, 30],
  ];
  for (const [name, ui, ascii, rows] of cases) {
    it(`draws the same screen as Ink: ${name}`, async () => {
      const ink = await frameWith(false, screen(ui, ascii, 100, rows));
      const before = composeStats.fast;
      const fast = await frameWith(true, screen(ui, ascii, 100, rows));
      expect(composeStats.fast).toBeGreaterThan(before);
      expect(ink.split('\n').length).toBeGreaterThan(5);
      expect(await normalise(fast)).toBe(await normalise(ink));
    });
  }

  it('leaves overlapping writes to Ink', () => {
    const caches = { getStringWidth: (s: string) => s.length };
    const write = (x: number, y: number, text: string) => ({ type: 'write' as const, x, y, text, transformers: [] });
    expect(composeLines({ width: 10, height: 2, operations: [write(0, 0, 'abcdef'), write(3, 0, 'X')], caches })).toBeUndefined();
    expect(composeLines({ width: 10, height: 2, operations: [write(0, 0, 'ab'), write(3, 0, 'X'), write(0, 1, 'z')], caches })?.output).toBe('ab X\nz');
  });
});
