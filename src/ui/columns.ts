// Table columns as data: title, width, how much they may grow, which go first when the terminal
// is narrow, and how a row becomes a cell. Layout is a pure function of the terminal width.
import { displayName, flowPhase, remoteLabel, rowRate, userLabel, type HintedUser } from '../state/derive.js';
import type { FlowSortColumn } from '../state/sort.js';
import type { FlowRow } from '../state/types.js';
import type { ProcessRow, ProcessSortColumn, RuleRow } from '../state/views.js';
import type { Rule } from '../protocol/messages.js';
import { age, bytes, clean, rate } from './format.js';
import { sparkline } from './sparkline.js';
import { shortToken } from '../rules/model.js';

export interface CellContext {
  /** The time the table shows: while the display is frozen, the time it froze. */
  now: number;
  /** The time it is. Flows waiting for a verdict are shown live even while frozen (their countdown
   *  runs, and one that arrived after the freeze has no negative age); undefined: `now`. */
  liveNow?: number;
  ascii: boolean;
  /** The machine of a source's flows (for the HOST column). */
  hostOf?: (source: string) => string | undefined;
  /** The local name of a flow's uid as its extension sent it (flows from this machine only). */
  hintedUser?: HintedUser;
}

export interface Column<R, S extends string = string> {
  id: string;
  title: string;
  /** Minimum width. */
  width: number;
  /** Share of the spare width this column takes. */
  grow?: number;
  align?: 'left' | 'right';
  /** Lower goes first when the terminal is too narrow. */
  priority: number;
  sort?: S;
  cell(row: R, ctx: CellContext): string;
}

export interface PlacedColumn<R, S extends string = string> extends Column<R, S> {
  at: number;
  size: number;
}

/** Fit columns into `total` characters: drop the least important until they fit, then share the rest. */
export function layout<R, S extends string>(columns: readonly Column<R, S>[], total: number): PlacedColumn<R, S>[] {
  let chosen = [...columns];
  const need = (cols: readonly Column<R, S>[]) => cols.reduce((w, c) => w + c.width, 0) + Math.max(cols.length - 1, 0);
  while (chosen.length > 1 && need(chosen) > total) {
    const least = chosen.reduce((a, b) => (b.priority < a.priority ? b : a));
    chosen = chosen.filter((c) => c !== least);
  }
  const spare = Math.max(total - need(chosen), 0);
  const grow = chosen.reduce((g, c) => g + (c.grow ?? 0), 0);
  let given = 0;
  const growing = chosen.filter((c) => c.grow);
  let at = 0;
  return chosen.map((c) => {
    let extra = 0;
    if (c.grow && grow > 0) {
      extra = c === growing[growing.length - 1] ? spare - given : Math.floor((spare * c.grow) / grow);
      given += extra;
    }
    const placed = { ...c, at, size: c.width + extra };
    at += placed.size + 1;
    return placed;
  });
}

/** How long after its deadline a pending row may wait for the extension's verdict before it is shown
 *  as overdue. */
const OVERDUE_GRACE_MS = 3_000;

/** The clock a row is shown by: a pending row is live whatever the freeze. */
function rowNow(row: FlowRow, c: CellContext): number {
  return c.liveNow !== undefined && flowPhase(row) === 'pending' ? c.liveNow : c.now;
}

function stateCell(row: FlowRow, now: number, ascii: boolean): string {
  const phase = flowPhase(row);
  if (phase === 'pending') {
    const deadline = row.flow.pending?.deadline ?? now;
    // The extension applies its default at the deadline and says so; a row still pending well after
    // it means that word never came (a fleet host gone, a link lost), not that the flow still waits.
    if (now - deadline > OVERDUE_GRACE_MS) return 'overdue';
    return `pending ${Math.max(Math.ceil((deadline - now) / 1000), 0)}s`;
  }
  // A conversation's packets beyond the first (a blocked UDP sender's datagrams) are counted on its row.
  const packets = row.flow.packets;
  if (packets !== undefined && packets > 1) return `${phase} ${ascii ? 'x' : '×'}${packets}`;
  return phase;
}

export const FLOW_COLUMNS: readonly Column<FlowRow, FlowSortColumn>[] = [
  { id: 'process', title: 'PROCESS', width: 12, grow: 3, priority: 100, sort: 'process', cell: (r) => clean(displayName(r)) },
  { id: 'pid', title: 'PID', width: 7, align: 'right', priority: 60, sort: 'pid', cell: (r) => String(r.attribution.pid ?? r.flow.pid ?? '-') },
  { id: 'user', title: 'USER', width: 8, priority: 40, sort: 'user', cell: (r, c) => clean(userLabel(r, c.hintedUser) ?? '-') },
  { id: 'dir', title: 'DIR', width: 3, priority: 50, sort: 'direction', cell: (r) => (r.flow.direction === 'outbound' ? 'out' : 'in') },
  { id: 'proto', title: 'PROT', width: 4, priority: 55, sort: 'protocol', cell: (r) => r.flow.protocol },
  { id: 'remote', title: 'REMOTE', width: 16, grow: 4, priority: 95, sort: 'remote', cell: (r) => `${clean(remoteLabel(r))}:${r.flow.remote.port}` },
  { id: 'state', title: 'STATE', width: 12, priority: 90, sort: 'state', cell: (r, c) => stateCell(r, rowNow(r, c), c.ascii) },
  { id: 'rx', title: 'RX', width: 6, align: 'right', priority: 30, sort: 'rx', cell: (r) => bytes(r.rx) },
  { id: 'tx', title: 'TX', width: 6, align: 'right', priority: 30, sort: 'tx', cell: (r) => bytes(r.tx) },
  { id: 'rate', title: 'RATE', width: 8, align: 'right', priority: 70, sort: 'rate', cell: (r, c) => rate(rowRate(r, c.now)) },
  { id: 'age', title: 'AGE', width: 5, align: 'right', priority: 65, sort: 'age', cell: (r, c) => age(rowNow(r, c) - r.flow.time) },
];

/** Shown when flows come from more than one host (and always for a fleet). */
const FLOW_HOST: Column<FlowRow, FlowSortColumn> = { id: 'host', title: 'HOST', width: 10, grow: 1, priority: 92, sort: 'host', cell: (r, c) => clean(c.hostOf?.(r.source) ?? r.source) };

/** The flows view's columns: with HOST second when rows come from several hosts. */
export function flowColumns(hosts: boolean): readonly Column<FlowRow, FlowSortColumn>[] {
  return hosts ? [FLOW_COLUMNS[0]!, FLOW_HOST, ...FLOW_COLUMNS.slice(1)] : FLOW_COLUMNS;
}

export const PROCESS_COLUMNS: readonly Column<ProcessRow, ProcessSortColumn>[] = [
  { id: 'process', title: 'PROCESS', width: 14, grow: 2, priority: 100, sort: 'process', cell: (p) => clean(p.name) },
  { id: 'signer', title: 'SIGNER / PACKAGE', width: 14, grow: 2, priority: 80, sort: 'signer', cell: (p) => clean(p.signer?.label ?? '-') },
  { id: 'user', title: 'USER', width: 8, priority: 40, cell: (p) => clean(p.user ?? '-') },
  { id: 'pids', title: 'PIDS', width: 4, align: 'right', priority: 35, cell: (p) => String(p.pids) },
  { id: 'live', title: 'LIVE', width: 5, align: 'right', priority: 90, sort: 'live', cell: (p) => String(p.live) },
  { id: 'rate', title: 'RATE', width: 8, align: 'right', priority: 70, sort: 'rate', cell: (p) => rate(p.rate) },
  // The last 3 minutes, 15 s a mark (state/process-traffic.ts), each row to its own peak.
  { id: 'recent', title: 'LAST 3 MIN', width: 12, priority: 65, cell: (p, c) => (p.recent ? sparkline(p.recent, 12, { ascii: c.ascii }) : '') },
  { id: 'rx', title: 'RX', width: 6, align: 'right', priority: 50, sort: 'rx', cell: (p) => bytes(p.rx) },
  { id: 'tx', title: 'TX', width: 6, align: 'right', priority: 50, sort: 'tx', cell: (p) => bytes(p.tx) },
  { id: 'blocked', title: 'BLOCKED', width: 7, align: 'right', priority: 60, sort: 'blocked', cell: (p) => String(p.blocked) },
];

const PROCESS_HOSTS: Column<ProcessRow, ProcessSortColumn> = { id: 'hosts', title: 'HOSTS', width: 5, align: 'right', priority: 85, cell: (p) => String(p.hosts.size) };

/** The processes view's columns: with HOSTS (how many run this code) when rows come from several hosts. */
export function processColumns(hosts: boolean): readonly Column<ProcessRow, ProcessSortColumn>[] {
  return hosts ? [PROCESS_COLUMNS[0]!, PROCESS_COLUMNS[1]!, PROCESS_HOSTS, ...PROCESS_COLUMNS.slice(2)] : PROCESS_COLUMNS;
}

/** Where a rule applies, for the HOST column of the rules view. */
export function ruleHostLabel(r: RuleRow): string {
  if (r.fleet === 'all') return 'all (fleet)';
  if (r.fleet === 'host') return `${clean(r.host ?? '?')} (fleet)`;
  return clean(r.host ?? r.source);
}

const RULE_HOST: Column<RuleRow> = { id: 'host', title: 'HOST', width: 12, grow: 1, priority: 92, cell: (r) => ruleHostLabel(r) };

/** The rules view's columns: with HOST (which host keeps it, or the fleet's) for several hosts. */
export function ruleColumns(hosts: boolean): readonly Column<RuleRow>[] {
  return hosts ? [RULE_COLUMNS[0]!, RULE_HOST, ...RULE_COLUMNS.slice(1)] : RULE_COLUMNS;
}

export function ruleIdentityLabel(rule: Rule): string {
  const id = rule.identity;
  // A token rule names one process instance, not any process.
  if (!id) return rule.duration.kind === 'process' ? `process ${shortToken(rule.duration.token)}` : 'any process';
  return clean(id.label ?? `${id.kind}:${id.value}`);
}

export function ruleEndpointLabel(rule: Rule): string {
  const e = rule.endpoint;
  if (!e) return 'any endpoint';
  const where = e.host ?? (e.domain ? `*.${e.domain}` : undefined) ?? e.address ?? e.cidr ?? 'any';
  const port = e.port !== undefined ? `:${e.port}` : e.portRange ? `:${e.portRange[0]}-${e.portRange[1]}` : '';
  return clean(`${where}${port}`);
}

/** How long the rule lasts, in the column's 8 characters: until its process exits, the time left of
 *  a timed rule, until the extension restarts (a session rule), or for good. */
function durationLabel(rule: Rule, now: number): string {
  const d = rule.duration;
  const left = d.kind === 'until' ? (d.until > now ? age(d.until - now) : 'expired') : undefined;
  if (rule.session) return left ?? 'restart';
  switch (d.kind) {
    case 'once': return 'once';
    case 'process': return 'exit';
    case 'always': return 'always';
    case 'until': return left!;
  }
}

export const RULE_COLUMNS: readonly Column<RuleRow>[] = [
  { id: 'action', title: 'ACTION', width: 6, priority: 100, cell: (r) => r.rule.action },
  { id: 'identity', title: 'IDENTITY', width: 16, grow: 3, priority: 95, cell: (r) => ruleIdentityLabel(r.rule) },
  { id: 'endpoint', title: 'ENDPOINT', width: 14, grow: 2, priority: 90, cell: (r) => ruleEndpointLabel(r.rule) },
  { id: 'proto', title: 'PROT', width: 4, priority: 40, cell: (r) => r.rule.protocol ?? 'any' },
  { id: 'duration', title: 'DURATION', width: 8, priority: 60, cell: (r, c) => durationLabel(r.rule, c.now) },
  { id: 'created', title: 'CREATED', width: 7, align: 'right', priority: 50, cell: (r, c) => `${age(c.now - r.rule.created)}` },
  { id: 'hits', title: 'HITS', width: 5, align: 'right', priority: 70, cell: (r) => String(r.rule.hits) },
  { id: 'enabled', title: 'ON', width: 3, priority: 30, cell: (r) => (r.rule.enabled ? 'yes' : 'no') },
];

