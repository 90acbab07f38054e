// Selectors: what each view shows, computed from the table and the view settings. Memoised per
// table revision so an unchanged table costs nothing per frame.
import type { Attribution, Signer, Trust } from '../attribution/types.js';
import type { Rule } from '../protocol/messages.js';
import { TRUST_RANK, flowPhase, isOver, processKey, processName, rowRate } from './derive.js';
import { FlowFilter, type FilterSpec } from './filter.js';
import { FlowSorter, type SortSpec } from './sort.js';
import type { FlowRow, TableState } from './types.js';
import { sourceHost } from './hosts.js';
import { fleetRuleScope } from '../fleet/wire.js';

export interface FlowsQuery {
  sort: SortSpec;
  filter: FilterSpec;
}

/** Sorting + filtering of the flows view, with the caches that make them cheap. */
export class FlowsSelector {
  private readonly sorter = new FlowSorter();
  private readonly filter = new FlowFilter();
  private memo?: { rev: number; flows: Map<string, FlowRow>; key: string; rows: readonly FlowRow[] };

  select(state: TableState, query: FlowsQuery): readonly FlowRow[] {
    const key = JSON.stringify(query);
    if (this.memo && this.memo.rev === state.rev && this.memo.flows === state.flows && this.memo.key === key) return this.memo.rows;
    const sorted = this.sorter.sorted(state, query.sort);
    const keep = this.filter.predicate(state, query.filter);
    const rows = keep ? sorted.filter(keep) : sorted;
    this.memo = { rev: state.rev, flows: state.flows, key, rows };
    return rows;
  }
}

export interface ProcessRow {
  key: string;
  trust: Trust;
  name: string;
  identity?: string;
  path?: string;
  user?: string;
  signer?: Signer;
  attribution: Attribution;
  pids: number;
  live: number;
  blocked: number;
  rx: number;
  tx: number;
  rate: number;
  /** One flow of this process (the newest), for details and actions. */
  sample: FlowRow;
  /** Bytes per step over the last minutes, oldest first (process-traffic.ts), for the sparkline. */
  recent?: readonly number[];
  /** The same code on each host that runs it (one entry without a known host). */
  hosts: ReadonlyMap<string, HostShare>;
}

export interface HostShare {
  live: number;
  rx: number;
  tx: number;
  rate: number;
}

export const PROCESS_SORT_COLUMNS = ['trust', 'process', 'signer', 'live', 'rate', 'rx', 'tx', 'blocked'] as const;
export type ProcessSortColumn = (typeof PROCESS_SORT_COLUMNS)[number];

/** One row per process identity (not per PID). */
export function selectProcesses(state: TableState, query: { sort: SortSpec<ProcessSortColumn>; filter: FilterSpec }, filter?: FlowFilter): ProcessRow[] {
  const keep = filter?.predicate(state, query.filter);
  const groups = new Map<string, ProcessRow & { pidSet: Set<string> }>();
  for (const row of state.flows.values()) {
    if (keep && !keep(row)) continue;
    const a = row.attribution;
    const key = processKey(a, row.flow.token);
    let g = groups.get(key);
    if (!g) {
      g = {
        key,
        trust: a.trust,
        name: processName(a, row.flow.pid),
        identity: a.identity,
        path: a.path,
        user: a.user ?? (a.uid !== undefined ? String(a.uid) : undefined),
        signer: a.signer,
        attribution: a,
        pids: 0,
        pidSet: new Set(),
        live: 0,
        blocked: 0,
        rx: 0,
        tx: 0,
        rate: 0,
        sample: row,
        hosts: new Map(),
      };
      groups.set(key, g);
    }
    const host = sourceHost(state.sources.get(row.source)) ?? row.source;
    let share = (g.hosts as Map<string, HostShare>).get(host);
    if (!share) (g.hosts as Map<string, HostShare>).set(host, (share = { live: 0, rx: 0, tx: 0, rate: 0 }));
    if (!isOver(row)) share.live++;
    share.rx += row.rx;
    share.tx += row.tx;
    share.rate += rowRate(row, state.now);
    // The group is only as trustworthy as its least trustworthy member.
    if (TRUST_RANK[a.trust] < TRUST_RANK[g.trust]) g.trust = a.trust;
    const pid = a.pid ?? row.flow.pid;
    // The same number on two machines is two processes.
    if (pid !== undefined) g.pidSet.add(`${host}:${pid}`);
    if (!isOver(row)) g.live++;
    if (flowPhase(row) === 'blocked') g.blocked++;
    g.rx += row.rx;
    g.tx += row.tx;
    g.rate += rowRate(row, state.now);
    if (row.flow.time > g.sample.flow.time) g.sample = row;
  }
  const rows: ProcessRow[] = [];
  for (const g of groups.values()) {
    const { pidSet, ...rest } = g;
    rows.push({ ...rest, pids: pidSet.size });
  }
  const key = (p: ProcessRow): number | string => {
    switch (query.sort.column) {
      case 'trust': return TRUST_RANK[p.trust];
      case 'process': return p.name.toLowerCase();
      case 'signer': return p.signer?.label.toLowerCase() ?? '~';
      case 'live': return -p.live;
      case 'rate': return -p.rate;
      case 'rx': return -p.rx;
      case 'tx': return -p.tx;
      case 'blocked': return -p.blocked;
    }
  };
  const sign = query.sort.reverse ? -1 : 1;
  rows.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) return (ka < kb ? -1 : 1) * sign;
    return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
  });
  return rows;
}

export interface RuleRow {
  key: string;
  source: string;
  rule: Rule;
  /** The host it applies on (a fleet rule for one host, or the host that keeps it); absent: every host
   *  of the fleet, or a single extension's. */
  host?: string;
  /** A fleet rule (from the rules bucket): for every host or for one. */
  fleet?: 'all' | 'host';
}

let lastRules: { version: string; rows: RuleRow[] } | undefined;

/** Every source's rules as rows; rebuilt only when a rule list changed (the table changes far more
 *  often than its rules). */
export function selectRules(state: TableState): RuleRow[] {
  let version = '';
  for (const info of state.sources.values()) version += `${info.id}\u0000${info.rules.serial}.${info.rules.rev}\u0000`;
  if (lastRules?.version === version) return lastRules.rows;
  const rows: RuleRow[] = [];
  // With the fleet's server among the sources, its rules bucket lists the fleet rules once; the
  // copies every host reports in its own list are not shown again.
  const bucket = [...state.sources.values()].some((s) => s.fleet?.role === 'server');
  for (const info of state.sources.values()) {
    const host = sourceHost(info);
    for (const rule of info.rules.list()) {
      const scope = rule.id.startsWith('fleet:') ? fleetRuleScope(rule.id) : undefined;
      if (scope && bucket && info.fleet?.role !== 'server') continue;
      const row: RuleRow = { key: `${info.id}#${rule.id}`, source: info.id, rule };
      if (info.fleet?.role === 'server' || scope) {
        row.fleet = scope?.host ? 'host' : 'all';
        if (scope?.host) row.host = scope.host;
      } else if (host !== undefined) row.host = host;
      rows.push(row);
    }
  }
  lastRules = { version, rows };
  return rows;
}

/** The window of `total` rows that keeps `cursor` visible, given the previous top. */
export function visibleWindow(total: number, cursor: number, height: number, previousTop: number): { top: number; cursor: number } {
  if (total <= 0 || height <= 0) return { top: 0, cursor: 0 };
  const c = Math.min(Math.max(cursor, 0), total - 1);
  let top = Math.min(Math.max(previousTop, 0), Math.max(total - height, 0));
  if (c < top) top = c;
  if (c >= top + height) top = c - height + 1;
  return { top, cursor: c };
}
