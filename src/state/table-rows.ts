// The flow table's rows and their bookkeeping, shared by every reducer step: the working copy of one
// step (Draft), and making, replacing, counting and journalling rows. Rows are replaced when what
// they show changes; byte counters and rates are updated in place (see reducer.ts for why).
import type { Attribution } from '../attribution/types.js';
import type { ClosedEntry, FlowRow, SourceError, SourceInfo, TableOptions, Tally, TrafficSample } from './types.js';
import { flowPhase, isOver } from './derive.js';
import { COUNTERS, GONE, Journal, WRITTEN } from './journal.js';
import { TableRow } from './row.js';

/** Longest change journal kept; a sorter further behind re-sorts in full. About 1.5 s at 10,000
 *  events/s (about 20,000 entries/s), several frames even while flooded; entries and the replaced
 *  rows they hold are live data, so a longer journal costs heap. */
export const JOURNAL_MAX = 30_000;

/** Working copy for one step: scalar fields and small collections are copied, the flow Map, the
 *  closed list and the journal are not. */
export interface Draft {
  rev: number;
  now: number;
  options: TableOptions;
  flows: Map<string, FlowRow>;
  attributions: Map<string, Attribution>;
  sources: Map<string, SourceInfo>;
  /** In place, like `flows`: copying up to tens of thousands of keys per step was garbage. */
  closed: ClosedEntry[];
  totals: { rx: number; tx: number };
  traffic: TrafficSample[];
  lastError?: SourceError;
  evicted: number;
  tally: { -readonly [K in keyof Tally]: number };
  journal: Journal;
  journalSince: number;
}

export const NO_COUNTERS = { rx: 0, tx: 0, rxRate: 0, txRate: 0, bytesTime: undefined };

export type RowChange = Partial<Pick<FlowRow, 'flow' | 'attribution' | 'appAttribution' | 'rxRate' | 'txRate' | 'closedAt' | 'endReason'>>;

/** A new version of `base` with `change` applied (a field present in `change` wins, even as undefined). */
export function makeRow(base: FlowRow, change: RowChange, rev: number): FlowRow {
  const pick = <K extends keyof RowChange>(k: K): FlowRow[K] => (k in change ? change[k] : base[k]) as FlowRow[K];
  return new TableRow(
    base.key,
    pick('flow'),
    pick('attribution'),
    { appAttribution: pick('appAttribution'), closedAt: pick('closedAt'), endReason: pick('endReason') },
    { rx: base.rx, tx: base.tx, rxRate: pick('rxRate'), txRate: pick('txRate'), bytesTime: base.bytesTime },
    rev,
  );
}

export function count(d: Draft, row: FlowRow, sign: 1 | -1): void {
  d.tally.rxRate += sign * row.rxRate;
  d.tally.txRate += sign * row.txRate;
  const phase = flowPhase(row);
  if (isOver(row)) {
    // A blocked flow is over at once; while it lingers it counts as blocked only (never as live,
    // nor as closed: each flow is in one of the header's live / blocked / closed counts).
    if (phase === 'blocked') d.tally.blocked += sign;
    else d.tally.closed += sign;
    return;
  }
  d.tally.live += sign;
  if (phase === 'pending') d.tally.pending += sign;
  if (phase === 'blocked') d.tally.blocked += sign;
  if (row.attribution.trust === 'secure') d.tally.secure += sign;
}

/** Every write to the flow Map goes through here and removeRow, keeping the tally and retiring
 *  the row that was replaced. */
export function journal(d: Draft, row: FlowRow, gone: boolean): void {
  // Drop the older half when full; the journal stays complete for steps after the last dropped entry's.
  trimJournal(d);
  d.journal.push(d.rev, row, gone ? GONE : WRITTEN);
}

export function trimJournal(d: Draft): void {
  if (d.journal.length >= JOURNAL_MAX) {
    d.journalSince = d.journal.dropOldest(JOURNAL_MAX >> 1);
  }
}

/** A new counter sample, written into the row itself (see the top of this file). The phase does
 *  not change, so of the tally only the rate sums move. */
export function setCounters(d: Draft, row: FlowRow, rx: number, tx: number, rxRate: number, txRate: number, bytesTime: number | undefined): void {
  trimJournal(d);
  d.journal.push(d.rev, row, COUNTERS, row.rx, row.tx, row.rxRate + row.txRate);
  d.tally.rxRate += rxRate - row.rxRate;
  d.tally.txRate += txRate - row.txRate;
  row.rx = rx;
  row.tx = tx;
  row.rxRate = rxRate;
  row.txRate = txRate;
  row.bytesTime = bytesTime;
  row.rev = d.rev;
}

export function setRow(d: Draft, row: FlowRow): void {
  const old = d.flows.get(row.key);
  if (old) {
    count(d, old, -1);
    old.retired = true;
    journal(d, old, true);
  }
  d.flows.set(row.key, row);
  count(d, row, 1);
  journal(d, row, false);
}

export function removeRow(d: Draft, key: string): boolean {
  const old = d.flows.get(key);
  if (!old) return false;
  count(d, old, -1);
  old.retired = true;
  journal(d, old, true);
  d.flows.delete(key);
  return true;
}

export function replaceRow(d: Draft, row: FlowRow, change: Parameters<typeof makeRow>[1]): void {
  setRow(d, makeRow(row, change, d.rev));
}
