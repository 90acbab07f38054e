// Sorting the flow table. A full sort of 100,000 rows per frame is too slow at 10 frames/s, so the
// sorter keeps the last order and, when only some rows changed, removes them, sorts just those and
// merges the two sorted runs: O(n + k log k) instead of O(n log n).
import { TRUST_RANK, displayName, flowPhase, hintedUserNames, remoteLabel, userLabel, type HintedUser } from './derive.js';
import { sourceHost } from './hosts.js';
import { COUNTERS, GONE, type Journal } from './journal.js';
import type { FlowPhase, FlowRow, TableState } from './types.js';

/** In the order of the columns (`<` `>` move left and right). 'host' only counts when the HOST column
 *  is shown (flows from more than one machine). */
export const FLOW_SORT_COLUMNS = [
  'trust',
  'process',
  'host',
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

/** One shared lower-case copy per distinct process name (a few hundred for 100,000 rows): most
 *  comparisons in a sort by process are between equal keys, and equal keys that are the same string
 *  compare at once where equal copies compare character by character. Bounded: starts over when full. */
const lowered = new Map<string, string>();
function lowerShared(text: string): string {
  let k = lowered.get(text);
  if (k === undefined) {
    if (lowered.size >= 20_000) lowered.clear();
    k = text.toLowerCase();
    lowered.set(text, k);
  }
  return k;
}

/** The machine of each source's flows, as the HOST column names it (the source itself when it names
 *  none). */
export type HostNames = ReadonlyMap<string, string>;

export function hostNames(state: Pick<TableState, 'sources'>): HostNames {
  const names = new Map<string, string>();
  for (const [id, info] of state.sources) names.set(id, sourceHost(info) ?? id);
  return names;
}

/** `hosts` for the host column, `hinted` (the local names of extensions' uids) for the user column. */
export function flowSortKey(row: FlowRow, column: FlowSortColumn, hosts?: HostNames, hinted?: HintedUser): SortKey {
  switch (column) {
    case 'host':
      return lowerShared(hosts?.get(row.source) ?? row.source);
    case 'trust':
      return TRUST_RANK[row.attribution.trust];
    case 'process':
      return lowerShared(displayName(row));
    case 'pid':
      return row.attribution.pid ?? row.flow.pid ?? -1;
    case 'user':
      return userLabel(row, hinted) ?? '';
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

/** The sort key a row had before the counter update journalled at `i` (its counters are updated in
 *  place), or undefined when the column does not depend on counters. */
function keyBefore(j: Journal, i: number, column: FlowSortColumn): SortKey | undefined {
  switch (column) {
    case 'rx':
      return -j.rx(i);
    case 'tx':
      return -j.tx(i);
    case 'rate':
      return -j.rate(i);
    default:
      return undefined;
  }
}

function compareKeys(ka: SortKey, kb: SortKey, a: FlowRow, b: FlowRow, sign: number): number {
  return compareOrder(ka, kb, a.flow.time, b.flow.time, a.key, b.key, sign);
}

/** The table's order from a row's sort key, flow time and row key. Ties: newest first, then by row
 *  key, so the order is total and stable across frames. */
function compareOrder(ka: SortKey, kb: SortKey, ta: number, tb: number, ra: string, rb: string, sign: number): number {
  if (ka !== kb) return (ka < kb ? -1 : 1) * sign;
  if (ta !== tb) return tb - ta;
  return ra < rb ? -1 : ra > rb ? 1 : 0;
}

/** Rows with their sort keys, as two parallel arrays (no wrapper object per row). */
interface Run {
  keys: SortKey[];
  rows: FlowRow[];
}

function sortRun(rows: FlowRow[], spec: SortSpec, keyOf: (row: FlowRow) => SortKey = (row) => flowSortKey(row, spec.column)): Run {
  const sign = spec.reverse ? -1 : 1;
  // Sorts an array of row numbers with the keys and times beside it: no object per row (a wrapper
  // per row was the sort's garbage, and under load a long sort lived through enough young
  // collections to be promoted), and each row's time is read once (on a column with many equal keys
  // most comparisons fall through to it).
  const n = rows.length;
  const keys: SortKey[] = new Array(n);
  const times = new Float64Array(n);
  const order: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    keys[i] = keyOf(row);
    times[i] = row.flow.time;
    order[i] = i;
  }
  order.sort((a, b) => compareOrder(keys[a]!, keys[b]!, times[a]!, times[b]!, rows[a]!.key, rows[b]!.key, sign));
  const outKeys: SortKey[] = new Array(n);
  const outRows: FlowRow[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const at = order[i]!;
    outKeys[i] = keys[at]!;
    outRows[i] = rows[at]!;
  }
  return { keys: outKeys, rows: outRows };
}

export function sortFlows(rows: Iterable<FlowRow>, spec: SortSpec, hosts?: HostNames, hinted?: HintedUser): FlowRow[] {
  return sortRun([...rows], spec, (row) => flowSortKey(row, spec.column, hosts, hinted)).rows;
}

/** The revision of the journal's newest entry (-1 when it is empty). */
function newestChange(journal: Journal): number {
  return journal.length > 0 ? journal.at(journal.length - 1) : -1;
}

/** How sorts were answered since start, across sorters (for the benchmark). */
export const sortStats = { full: 0, incremental: 0, fullRows: 0, repaired: 0 };

/** Memoised, incremental sort of one table. One instance per view.
 *  Between frames only the rows named in the table's journal are touched: each retired row is found
 *  in the last order by binary search, each new row is inserted by binary search, and the rest is
 *  copied as it was, so a frame costs O(k log n) comparisons plus a pointer copy of n. */
export class FlowSorter {
  private run: Run = { keys: [], rows: [] };
  /** The buffer the next splice writes into (then swapped with `run`): arrays of 100,000 entries
   *  allocated per frame land in large-object space and force full collections. */
  private spare: Run = { keys: [], rows: [] };
  private rev = -1;
  private flows?: Map<string, FlowRow>;
  private spec?: SortSpec;
  /** By host: the names the last order was sorted by (a source that names its machine later, or a new
   *  one, sorts everything again). */
  private hostsSeen = '';
  /** How the last call was answered (for tests and the benchmark). */
  lastWork: 'cached' | 'full' | 'incremental' = 'full';

  sorted(state: TableState, spec: SortSpec): readonly FlowRow[] {
    const hosts = spec.column === 'host' ? hostNames(state) : undefined;
    const hostsSeen = hosts ? JSON.stringify([...hosts]) : '';
    const hinted = spec.column === 'user' ? hintedUserNames(state) : undefined;
    const keyOf = (row: FlowRow): SortKey => flowSortKey(row, spec.column, hosts, hinted);
    const sameSpec = this.spec?.column === spec.column && this.spec.reverse === spec.reverse && this.hostsSeen === hostsSeen;
    const sameTable = this.flows === state.flows;
    // The flow Map and the journal are shared by every state of one table and written in place, so a
    // state may be sorted after later steps were reduced, even after a newer state: its Map already
    // holds their rows (seen in the fleet TUI: a frame drew state 2 with step 3 in the Map, and keys
    // are handled against the state last drawn). What an order covers is therefore the table's newest
    // change, not the rev of the state it was asked for; kept as the state's rev, the next frame
    // inserted those rows again (shown twice).
    const upTo = Math.max(state.rev, newestChange(state.journal));
    if (sameSpec && sameTable && this.rev >= upTo) {
      this.lastWork = 'cached';
      return this.run.rows;
    }
    const changes = sameSpec && sameTable && this.rev >= state.journalSince ? this.changesSince(state, spec, keyOf) : undefined;
    if (changes && this.applyChanges(changes, spec, keyOf)) {
      // The order must hold exactly the table's rows: should a change ever be missed, sort again
      // rather than show a row twice or a gone one (counted, for the tests and the benchmark).
      if (this.run.rows.length === state.flows.size) {
        this.lastWork = 'incremental';
        sortStats.incremental++;
      } else {
        sortStats.repaired++;
        this.sortAll(state, spec, keyOf);
      }
    } else {
      this.sortAll(state, spec, keyOf);
    }
    this.rev = upTo;
    this.flows = state.flows;
    this.spec = { ...spec };
    this.hostsSeen = hostsSeen;
    return this.run.rows;
  }

  private sortAll(state: TableState, spec: SortSpec, keyOf: (row: FlowRow) => SortKey): void {
    this.run = sortRun([...state.flows.values()], spec, keyOf);
    this.lastWork = 'full';
    sortStats.full++;
    sortStats.fullRows += this.run.rows.length;
  }

  /** Applies the journal's changes to the last order; false when a changed row is not where the
   *  last order has it (a full sort is then needed). */
  private applyChanges(changes: ReturnType<FlowSorter['changesSince']>, spec: SortSpec, keyOf: (row: FlowRow) => SortKey): boolean {
    const sign = spec.reverse ? -1 : 1;
    if (!this.replaceInPlace(changes.replaced, changes.oldKey, sign)) return false;
    const cuts = this.positionsOf(changes.gone, changes.oldKey, sign);
    if (!cuts) return false;
    if (cuts.length === 0 && changes.added.length === 0) return true;
    const next = splice(this.run, cuts, sortRun(changes.added, spec, keyOf), sign, this.spare);
    this.spare = this.run;
    this.run = next;
    return true;
  }

  /** From the journal: rows of the last order that left, current rows that are new since, and
   *  rows replaced by a newer version with the same sort key (those keep their place). */
  private changesSince(
    state: TableState,
    spec: SortSpec,
    keyOf: (row: FlowRow) => SortKey,
  ): { gone: FlowRow[]; added: FlowRow[]; replaced: Array<[FlowRow, FlowRow]>; oldKey: (row: FlowRow) => SortKey } {
    const goneByKey = new Map<string, FlowRow>();
    const added: FlowRow[] = [];
    // Rows of the last order whose counters changed in place: the key they were sorted by, taken
    // from their earliest counter entry since the last order (the journal is read newest first).
    const keyThen = new Map<FlowRow, SortKey>();
    const j = state.journal;
    for (let i = j.length - 1; i >= 0; i--) {
      if (j.at(i) <= this.rev) break;
      const row = j.row(i);
      const kind = j.kind(i);
      if (kind === COUNTERS) {
        const k = row.born <= this.rev ? keyBefore(j, i, spec.column) : undefined;
        if (k !== undefined) keyThen.set(row, k);
      } else if (kind === GONE) {
        // Only rows that were in the last order need cutting out of it.
        if (row.born <= this.rev) goneByKey.set(row.key, row);
      } else if (!row.retired) {
        added.push(row);
      }
    }
    // A row still in the table that moved because its counters changed: out at its old key, in at its new one.
    for (const row of keyThen.keys()) {
      if (row.retired) continue;
      goneByKey.set(row.key, row);
      added.push(row);
    }
    const oldKey = (row: FlowRow): SortKey => keyThen.get(row) ?? keyOf(row);
    const replaced: Array<[FlowRow, FlowRow]> = [];
    const stillAdded: FlowRow[] = [];
    for (const row of added) {
      const old = goneByKey.get(row.key);
      if (old && oldKey(old) === keyOf(row)) {
        replaced.push([old, row]);
        goneByKey.delete(row.key);
      } else {
        stillAdded.push(row);
      }
    }
    return { gone: [...goneByKey.values()], added: stillAdded, replaced, oldKey };
  }

  /** Puts each newer row where its older version was (same sort key, so the same place). */
  private replaceInPlace(pairs: Array<[FlowRow, FlowRow]>, oldKey: (row: FlowRow) => SortKey, sign: number): boolean {
    if (pairs.length === 0) return true;
    // In the order of the last sort, so one forward walk finds them all (see positionsOf).
    const keyed = pairs.map((p) => ({ k: oldKey(p[0]), old: p[0], row: p[1] }));
    keyed.sort((a, b) => compareKeys(a.k, b.k, a.old, b.old, sign));
    const at = this.walk(keyed.map((e) => e.k), keyed.map((e) => e.old), sign);
    if (!at) return false;
    const order = this.run.rows;
    for (let i = 0; i < keyed.length; i++) order[at[i]!] = keyed[i]!.row;
    return true;
  }

  /** Positions of `rows` in the last order (ascending), or undefined if one is not where it should be. */
  private positionsOf(rows: FlowRow[], oldKey: (row: FlowRow) => SortKey, sign: number): number[] | undefined {
    if (rows.length === 0) return [];
    const run = sortRun(rows, { column: 'age', reverse: sign < 0 }, oldKey);
    return this.walk(run.keys, run.rows, sign);
  }

  /** Finds rows given in sorted order with one forward walk: each search gallops from the last
   *  position found, so k rows cost about k log(n / k) comparisons instead of k log n. */
  private walk(keys: readonly SortKey[], rows: readonly FlowRow[], sign: number): number[] | undefined {
    const { keys: orderKeys, rows: order } = this.run;
    const out: number[] = new Array(rows.length);
    let from = 0;
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r]!;
      const at = lowerBound(orderKeys, order, from, keys[r]!, row, sign);
      if (order[at] !== row) return undefined;
      out[r] = at;
      from = at + 1;
    }
    return out;
  }
}

/** First index in [from, n) whose entry is not before (k, row). Gallops from `from` first: sorted
 *  insertions are often close together (new flows all land at the top under the default sort). */
function lowerBound(keys: readonly SortKey[], rows: readonly FlowRow[], from: number, k: SortKey, row: FlowRow, sign: number): number {
  const n = rows.length;
  let lo = from;
  let step = 1;
  let hi = from;
  while (hi < n && compareKeys(keys[hi]!, k, rows[hi]!, row, sign) < 0) {
    lo = hi + 1;
    hi = from + step;
    step *= 2;
  }
  if (hi > n) hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, k, rows[mid]!, row, sign) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The last order without the rows at `cuts`, with the sorted run `add` inserted in place, written
 *  into `into` (reused between frames). */
function splice(a: Run, cuts: number[], add: Run, sign: number, into: Run): Run {
  const { keys, rows } = into;
  let o = 0;
  let i = 0;
  let c = 0;
  // Copy a[i..to), skipping cut positions; no row is dereferenced, only pointers move.
  const copyUntil = (to: number) => {
    while (i < to) {
      const stop = c < cuts.length && cuts[c]! < to ? cuts[c]! : to;
      for (; i < stop; i++) {
        keys[o] = a.keys[i]!;
        rows[o++] = a.rows[i]!;
      }
      if (stop < to) {
        i = stop + 1;
        c++;
      }
    }
  };
  for (let j = 0; j < add.rows.length; j++) {
    const lo = lowerBound(a.keys, a.rows, i, add.keys[j]!, add.rows[j]!, sign);
    copyUntil(lo);
    keys[o] = add.keys[j]!;
    rows[o++] = add.rows[j]!;
  }
  copyUntil(a.rows.length);
  keys.length = o;
  rows.length = o;
  return { keys, rows };
}

/** `s` cycles forward; `<` / `>` move left / right (htop habits). */
export function nextColumn<C extends string>(columns: readonly C[], current: C, step: number): C {
  const at = Math.max(columns.indexOf(current), 0);
  return columns[(at + step + columns.length) % columns.length]!;
}
