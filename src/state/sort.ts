// Sorting the flow table. A full sort of 100,000 rows per frame is too slow at 10 frames/s, so the
// sorter keeps the last order and, when only some rows changed, removes them, sorts just those and
// merges the two sorted runs: O(n + k log k) instead of O(n log n).
import { TRUST_RANK, displayName, flowPhase, remoteLabel } from './derive.js';
import type { FlowPhase, FlowRow, TableState } from './types.js';

export const FLOW_SORT_COLUMNS = [
  'trust',
  'process',
  'pid',
  'user',
  'direction',
  'protocol',
  'remote',
  'state',
  'rx',
  'tx',
  'rate',
  'age',
] as const;
export type FlowSortColumn = (typeof FLOW_SORT_COLUMNS)[number];

export interface SortSpec<C extends string = FlowSortColumn> {
  column: C;
  /** Opposite of the column's natural order (numbers: largest first; age: newest first; text: a→z). */
  reverse: boolean;
}

type SortKey = number | string;

const PHASE_RANK: Record<FlowPhase, number> = { pending: 0, blocked: 1, allowed: 2, open: 3, closed: 4 };

export function flowSortKey(row: FlowRow, column: FlowSortColumn): SortKey {
  switch (column) {
    case 'trust':
      return TRUST_RANK[row.attribution.trust];
    case 'process':
      return displayName(row).toLowerCase();
    case 'pid':
      return row.attribution.pid ?? row.flow.pid ?? -1;
    case 'user':
      return row.attribution.user ?? String(row.attribution.uid ?? row.flow.uid ?? '');
    case 'direction':
      return row.flow.direction;
    case 'protocol':
      return row.flow.protocol;
    case 'remote':
      return remoteLabel(row).toLowerCase();
    case 'state':
      return PHASE_RANK[flowPhase(row)];
    case 'rx':
      return -row.rx;
    case 'tx':
      return -row.tx;
    case 'rate':
      return -(row.rxRate + row.txRate);
    case 'age':
      return -row.flow.time;
  }
}

interface Entry {
  k: SortKey;
  row: FlowRow;
}

function comparator(reverse: boolean): (a: Entry, b: Entry) => number {
  const sign = reverse ? -1 : 1;
  return (a, b) => {
    if (a.k !== b.k) return (a.k < b.k ? -1 : 1) * sign;
    // Ties: newest first, then by key, so the order is total and stable across frames.
    if (a.row.flow.time !== b.row.flow.time) return b.row.flow.time - a.row.flow.time;
    return a.row.key < b.row.key ? -1 : a.row.key > b.row.key ? 1 : 0;
  };
}

export function sortFlows(rows: Iterable<FlowRow>, spec: SortSpec): FlowRow[] {
  const entries: Entry[] = [];
  for (const row of rows) entries.push({ k: flowSortKey(row, spec.column), row });
  entries.sort(comparator(spec.reverse));
  return entries.map((e) => e.row);
}

/** Memoised, incremental sort of one table. One instance per view. */
export class FlowSorter {
  private entries: Entry[] = [];
  private rows: FlowRow[] = [];
  private rev = -1;
  private flows?: Map<string, FlowRow>;
  private spec?: SortSpec;
  /** How the last call was answered (for tests and the benchmark). */
  lastWork: 'cached' | 'full' | 'incremental' = 'full';

  sorted(state: TableState, spec: SortSpec): readonly FlowRow[] {
    const sameSpec = this.spec?.column === spec.column && this.spec.reverse === spec.reverse;
    if (sameSpec && this.flows === state.flows && this.rev === state.rev) {
      this.lastWork = 'cached';
      return this.rows;
    }
    const cmp = comparator(spec.reverse);
    const changed: Entry[] = [];
    if (sameSpec && this.flows === state.flows) {
      for (const row of state.flows.values()) if (row.rev > this.rev) changed.push({ k: flowSortKey(row, spec.column), row });
    }
    if (!sameSpec || this.flows !== state.flows || changed.length > state.flows.size / 4) {
      const all: Entry[] = [];
      for (const row of state.flows.values()) all.push({ k: flowSortKey(row, spec.column), row });
      all.sort(cmp);
      this.entries = all;
      this.lastWork = 'full';
    } else {
      const kept = this.entries.filter((e) => state.flows.get(e.row.key) === e.row);
      changed.sort(cmp);
      this.entries = merge(kept, changed, cmp);
      this.lastWork = 'incremental';
    }
    this.rows = this.entries.map((e) => e.row);
    this.rev = state.rev;
    this.flows = state.flows;
    this.spec = { ...spec };
    return this.rows;
  }
}

function merge(a: Entry[], b: Entry[], cmp: (x: Entry, y: Entry) => number): Entry[] {
  if (b.length === 0) return a;
  const out: Entry[] = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = cmp(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!;
  while (i < a.length) out[o++] = a[i++]!;
  while (j < b.length) out[o++] = b[j++]!;
  return out;
}

/** `s` cycles forward; `<` / `>` move left / right (htop habits). */
export function nextColumn<C extends string>(columns: readonly C[], current: C, step: number): C {
  const at = Math.max(columns.indexOf(current), 0);
  return columns[(at + step + columns.length) % columns.length]!;
}
