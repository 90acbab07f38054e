// What one flow costs in memory: builds the table the way the app does (wire lines through the
// decoder, attributions, the sorter's order) and prints heap bytes per flow after each stage.
// Run: npm run bench -- tui memory [flows] [kinds]; with `kinds` the heap at the end is summarised
// by object kind (MEMORY_STRINGS=1 also groups strings by their pattern).
import { Writable } from 'node:stream';
import { getHeapSnapshot } from 'node:v8';
import { createElement } from 'react';
import { render } from 'ink';
import { countFlows } from '../../src/state/derive.js';
import { initialUi } from '../../src/state/ui.js';
import { visibleWindow } from '../../src/state/views.js';
import { Screen, screenLayout } from '../../src/ui/Screen.js';
import { decodeExtensionMessage, encodeMessage } from '../../src/protocol/codec.js';
import { initialTable, reduce } from '../../src/state/reducer.js';
import type { TableState } from '../../src/state/types.js';
import { FlowsSelector } from '../../src/state/views.js';
import { HELLO, TOKENS, attributions, flowRecord, tokenOf } from './load.js';

export async function memoryReport(flows: number, summarise: boolean): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const used = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const perFlow = (bytes: number) => `${(bytes / flows).toFixed(0)} B/flow`;
  const now = Date.now();
  const empty = used();
  const lines = Array.from({ length: flows }, (_, n) => encodeMessage({ type: 'flow', flow: flowRecord(n, now - flows + n) }));
  // The wire lines are freed after decoding; their size is added back so each figure is the rest.
  const linesBytes = used() - empty;
  let table: TableState = initialTable({ maxFlows: 200_000 }, now);
  table = reduce(table, { type: 'status', source: 'bench', status: { state: 'connected', hello: HELLO } });
  const records = attributions();
  table = reduce(table, { type: 'attributions', updates: Array.from({ length: TOKENS }, (_, i) => ({ key: tokenOf(i), attribution: records.get(tokenOf(i))! })) });
  const base = used();

  // As the socket source delivers them: one decoded message per line, reduced in batches.
  const decoded = [];
  for (const line of lines) {
    const r = decodeExtensionMessage(line);
    if (!r.ok) throw new Error(r.error.message);
    decoded.push({ source: 'bench', message: r.message });
  }
  lines.length = 0;
  const afterDecode = used() + linesBytes;
  for (let i = 0; i < decoded.length; i += 1000) table = reduce(table, { type: 'events', events: decoded.slice(i, i + 1000) });
  decoded.length = 0;
  // Two counter samples for every flow, so rows carry rates as they do under live traffic.
  for (const [k, dt] of process.env.MEMORY_NO_BYTES ? [] : ([[1, 1000], [2, 2300]] as const)) {
    for (let i = 0; i < flows; i += 100) {
      const counters = Array.from({ length: Math.min(100, flows - i) }, (_, j) => ({ id: `b${i + j}`, rx: k * (1000 + 37 * (i + j)), tx: k * (300 + 11 * (i + j)) }));
      const r = decodeExtensionMessage(encodeMessage({ type: 'bytes', counters, time: now + dt }));
      if (!r.ok) throw new Error(r.error.message);
      table = reduce(table, { type: 'events', events: [{ source: 'bench', message: r.message }] });
    }
  }
  // The journal holds the rows written by the load; in the app it turns over within seconds.
  table = reduce(table, { type: 'tick', now });
  const afterTable = used() + linesBytes;
  const selector = new FlowsSelector();
  selector.select(table, { sort: { column: 'age', reverse: false }, filter: { query: '', onlyInsecure: false } });
  const afterSort = used() + linesBytes;
  process.stdout.write(`memory per flow (${flows.toLocaleString('en')} flows, heap in use after a full GC):\n`);
  process.stdout.write(`  decoded records alone: ${perFlow(afterDecode - base)}\n`);
  process.stdout.write(`  table (rows + records + Map + journal): ${perFlow(afterTable - base)}\n`);
  process.stdout.write(`  + sorted order: ${perFlow(afterSort - afterTable)}   total ${perFlow(afterSort - base)}\n`);
  process.stdout.write(`  (journal holds ${table.journal.length.toLocaleString('en')} entries)\n`);
  process.stdout.write(`  heap growth over 1,000 frames whose every row changes (1,000 flows, 200x50): ${(frameGrowth() / 1024 / 1024).toFixed(1)} MB\n`);
  if (summarise) await summary(flows);
  // Keep everything alive up to here.
  if (table.flows.size !== flows || !selector) throw new Error('table lost flows');
}

/** Self size by object kind (constructor or V8 type), largest first. */
async function summary(flows: number): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk as Buffer);
  const snap = JSON.parse(Buffer.concat(chunks).toString()) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const byKind = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    const name = snap.strings[snap.nodes[i + nameAt]!]!;
    const kind = type === 'object' || type === 'closure' ? `${type} ${name}` : type === 'string' || type === 'concatenated string' || type === 'sliced string' ? type : `${type} ${name.slice(0, 40)}`;
    if (process.env.MEMORY_STRINGS && type === 'string') {
      const shape = `string ${name.replace(/[0-9]+/g, '9').slice(0, 12)}`;
      const t = byKind.get(shape) ?? { count: 0, bytes: 0 };
      t.count++;
      t.bytes += snap.nodes[i + sizeAt]!;
      byKind.set(shape, t);
    }
    const k = byKind.get(kind) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += snap.nodes[i + sizeAt]!;
    byKind.set(kind, k);
  }
  if (process.env.MEMORY_LARGEST) {
    const big: Array<{ kind: string; bytes: number }> = [];
    for (let i = 0; i < snap.nodes.length; i += width) {
      const bytes = snap.nodes[i + sizeAt]!;
      if (bytes > 256 * 1024) big.push({ kind: `${types[snap.nodes[i + typeAt]!]} ${snap.strings[snap.nodes[i + nameAt]!]!.slice(0, 40)}`, bytes });
    }
    for (const b of big.sort((x, y) => y.bytes - x.bytes).slice(0, 15)) process.stdout.write(`    ${(b.bytes / 1024 / 1024).toFixed(2)} MB  ${b.kind}\n`);
  }
  const top = [...byKind.entries()].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 25);
  process.stdout.write(`  largest kinds in the heap (self size; per flow = bytes / ${flows.toLocaleString('en')}):\n`);
  for (const [kind, k] of top) {
    process.stdout.write(`    ${(k.bytes / 1024 / 1024).toFixed(1).padStart(6)} MB  ${(k.bytes / flows).toFixed(1).padStart(6)} B/flow  ${String(k.count).padStart(8)}×  ${kind}\n`);
  }
}

/** Heap kept by drawing: 1,000 frames of a screen whose rows all change every frame (ages move on),
 *  after 500 to warm up. Ink remembers every text it measures, so this grew ~14 MB per 1,000 frames. */
function frameGrowth(): number {
  const gc = (globalThis as { gc?: () => void }).gc!;
  class Discard extends Writable {
    isTTY = true;
    columns = 200;
    rows = 50;
    override _write(_chunk: unknown, _enc: unknown, done: () => void): void {
      done();
    }
  }
  const now = Date.now();
  let table: TableState = initialTable({}, now);
  table = reduce(table, { type: 'events', events: Array.from({ length: 1000 }, (_, n) => ({ source: 'bench', message: { type: 'flow' as const, flow: flowRecord(n, now - 1000 + n) } })) });
  const records = attributions();
  table = reduce(table, { type: 'attributions', updates: Array.from({ length: TOKENS }, (_, i) => ({ key: tokenOf(i), attribution: records.get(tokenOf(i))! })) });
  table = reduce(table, { type: 'status', source: 'bench', status: { state: 'connected', hello: HELLO } });
  const selector = new FlowsSelector();
  const ui = initialUi();
  const screen = (n: number) => {
    const sorted = selector.select(table, { sort: ui.flowSort, filter: ui.filter });
    const { tableRows, detailRows } = screenLayout(49, 1, undefined);
    const win = visibleWindow(sorted.length, 0, tableRows, 0);
    return createElement(Screen, { width: 200, height: 49, ascii: false, now: now + n * 1000, sources: [...table.sources.values()], counts: countFlows(table), ui, flows: sorted, processes: [], rules: [], top: win.top, cursor: win.cursor, tableRows, detailRows });
  };
  const instance = render(screen(0), { stdout: new Discard() as unknown as NodeJS.WriteStream, debug: true, patchConsole: false, exitOnCtrlC: false });
  let n = 1;
  for (; n <= 500; n++) instance.rerender(screen(n));
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (; n <= 1500; n++) instance.rerender(screen(n));
  gc();
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  instance.unmount();
  return grown;
}
