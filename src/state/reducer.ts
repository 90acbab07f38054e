// The flow table reducer: every change to what flowtop knows goes through `reduce(state, action)`.
//
// Why the flow Map is updated in place: copying a 100,000-entry Map costs ~75 ms here, so a
// copy per batch could not keep up with 10,000 events/s. The table is therefore owned by the one
// `scan` that holds it: each call returns a new state object (new `rev`) over the same Map, and
// callers never read an older state after reducing. A row is replaced when what it shows changes
// (phase, verdict, attribution), but its byte counters and rates are updated in place: at 10,000
// events/s a new row per counter sample was most of the garbage, and the replaced rows, held by the
// journal, were promoted and made the old generation grow well past the live data. Every change,
// in place or not, is journalled, which is how the sorter tells changed rows apart (see sort.ts).
import type { Attribution } from '../attribution/types.js';
import type { ExtensionMessage, FlowRecord } from '../protocol/messages.js';
import type { ConnectionStatus, SourceEvent } from '../source/types.js';
import type { AttributionUpdate, FlowRow, SourceInfo, TableOptions, TableState } from './types.js';
import { STALE_MS, flowPhase } from './derive.js';
import { shareStrings } from './intern.js';
import { agentAttribution } from './agent-attribution.js';
import { Journal } from './journal.js';
import { TableRow } from './row.js';
import { RuleList } from './rule-list.js';
import { NO_COUNTERS, journal, makeRow, removeRow, replaceRow, setCounters, setRow, JOURNAL_MAX, type Draft, type RowChange } from './table-rows.js';

export type TableAction =
  | { type: 'events'; events: readonly SourceEvent[] }
  | { type: 'attributions'; updates: readonly AttributionUpdate[] }
  | { type: 'status'; source: string; status: ConnectionStatus }
  /** A source that is part of a fleet (a host's flows are attributed by its agent: see agent-attribution.ts). */
  | { type: 'source'; source: string; fleet: NonNullable<SourceInfo['fleet']> }
  | { type: 'tick'; now: number }
  /** Several actions applied as one step (one new revision, one snapshot). */
  | { type: 'batch'; actions: readonly TableAction[] };

export const DEFAULT_TABLE_OPTIONS: TableOptions = { maxFlows: 200_000, lingerMs: 5_000, rateWindowMs: 2_000 };

const PENDING: Attribution = Object.freeze({ trust: 'pending' }) as Attribution;

export function initialTable(options: Partial<TableOptions> = {}, now = 0): TableState {
  return {
    rev: 0,
    now,
    options: { ...DEFAULT_TABLE_OPTIONS, ...options },
    flows: new Map(),
    attributions: new Map(),
    sources: new Map(),
    closed: [],
    totals: { rx: 0, tx: 0 },
    traffic: [],
    evicted: 0,
    tally: { live: 0, pending: 0, blocked: 0, closed: 0, secure: 0, rxRate: 0, txRate: 0 },
    journal: new Journal(JOURNAL_MAX),
    journalSince: 0,
  };
}

export function flowKey(source: string, id: string): string {
  return `${source}#${id}`;
}


export function reduce(state: TableState, action: TableAction): TableState {
  const draft: Draft = {
    ...state,
    rev: state.rev + 1,
    sources: new Map(state.sources),
    totals: { ...state.totals },
    traffic: [...state.traffic],
    tally: { ...state.tally },
  };
  apply(draft, action);
  return draft;
}

function apply(d: Draft, action: TableAction): void {
  switch (action.type) {
    case 'batch':
      for (const inner of action.actions) apply(d, inner);
      return;
    case 'events':
      for (const event of action.events) applyMessage(d, event.source, event.message);
      enforceBound(d);
      return;
    case 'attributions':
      applyAttributions(d, action.updates);
      return;
    case 'status':
      applyStatus(d, action.source, action.status);
      return;
    case 'source':
      d.sources.set(action.source, { ...sourceInfo(d, action.source), fleet: action.fleet });
      return;
    case 'tick': {
      const before = d.now;
      d.now = Math.max(d.now, action.now);
      if (Math.floor(d.now / 1000) !== Math.floor(before / 1000)) quietRates(d);
      expireClosed(d);
      pruneTraffic(d);
      return;
    }
  }
}

/** Once a second: a flow whose counters stopped coming moves no bytes any more (its rates go to 0),
 *  and the rate sums are recounted from the rows so additions and subtractions never drift. */
function quietRates(d: Draft): void {
  let rx = 0;
  let tx = 0;
  const quiet: FlowRow[] = [];
  for (const row of d.flows.values()) {
    if (row.rxRate === 0 && row.txRate === 0) continue;
    if (row.bytesTime === undefined || d.now - row.bytesTime > STALE_MS) {
      quiet.push(row);
      continue;
    }
    rx += row.rxRate;
    tx += row.txRate;
  }
  for (const row of quiet) setCounters(d, row, row.rx, row.tx, 0, 0, row.bytesTime);
  d.tally.rxRate = rx;
  d.tally.txRate = tx;
}

function sourceInfo(d: Draft, id: string): SourceInfo {
  const known = d.sources.get(id);
  if (known) return known;
  const fresh: SourceInfo = { id, status: { state: 'connecting', attempt: 0 }, rules: new RuleList() };
  d.sources.set(id, fresh);
  return fresh;
}

function applyStatus(d: Draft, source: string, status: ConnectionStatus): void {
  const info = sourceInfo(d, source);
  d.sources.set(source, { ...info, status, hello: status.state === 'connected' ? (status.hello ?? info.hello) : info.hello });
}

function applyMessage(d: Draft, source: string, message: ExtensionMessage): void {
  switch (message.type) {
    case 'hello': {
      // A hello starts a new connection: the snapshot that follows replaces everything known from
      // this extension (protocol §4.6). Rows of the last connection would otherwise stay forever, and
      // a restarted extension answers `unknown-flow` to any action on them.
      forgetSource(d, source);
      const info = sourceInfo(d, source);
      info.rules.reset();
      d.sources.set(source, { ...info, hello: message });
      return;
    }
    case 'flow':
      upsertFlow(d, source, message.flow);
      return;
    case 'bytes':
      applyBytes(d, source, message.counters, message.time);
      return;
    case 'end':
      endFlow(d, flowKey(source, message.id), message.time, message.reason);
      return;
    case 'verdict': {
      const key = flowKey(source, message.id);
      const row = d.flows.get(key);
      if (!row) return;
      const { pending: _pending, ...rest } = row.flow;
      const flow = { ...rest, verdict: message.verdict };
      replaceRow(d, row, { flow, ...blockedEnd(d, row, flow) });
      if (message.verdict.action === 'block') noteClosed(d, key);
      return;
    }
    case 'rules':
      // In place, O(rules in the message); parts marked `continues` wait for the last one.
      sourceInfo(d, source).rules.receive(message.rules, message.continues === true);
      touchSource(d, source);
      return;
    case 'rule-changed':
      // O(1): a rule list copied or searched per change froze the TUI under a flood of them.
      sourceInfo(d, source).rules.apply(message.op, message.rule);
      touchSource(d, source);
      return;
    case 'error':
      d.lastError = { source, code: message.code, message: message.message, time: d.now };
      return;
  }
}

function attributionFor(d: Draft, source: string, flow: FlowRecord): Attribution {
  if (d.sources.get(source)?.fleet?.role === 'host') return agentAttribution(flow, d.sources.get(source)?.hello?.host ?? source);
  if (flow.token) return d.attributions.get(flow.token) ?? PENDING;
  const user = flow.uid !== undefined ? d.options.userName?.(flow.uid) : undefined;
  return {
    trust: 'insecure',
    pid: flow.pid,
    uid: flow.uid,
    ...(user !== undefined ? { user } : {}),
    reason: {
      call: 'owner lookup',
      message: flow.ownerError
        ? `the extension could not find the owner: ${flow.ownerError}`
        : 'the extension sent no process token; nothing identifies the process',
    },
  };
}

function appAttributionFor(d: Draft, source: string, flow: FlowRecord): Attribution | undefined {
  if (d.sources.get(source)?.fleet?.role === 'host') return undefined;
  if (!flow.appToken || flow.appToken === flow.token) return undefined;
  return d.attributions.get(flow.appToken) ?? PENDING;
}

function upsertFlow(d: Draft, source: string, received: FlowRecord): void {
  const flow = shareStrings(received);
  const key = flowKey(source, flow.id);
  const old = d.flows.get(key);
  const change = { flow, attribution: attributionFor(d, source, flow), appAttribution: appAttributionFor(d, source, flow), ...blockedEnd(d, old, flow) };
  setRow(d, old ? makeRow(old, change, d.rev) : new TableRow(key, flow, change.attribution, change, NO_COUNTERS, d.rev));
  if (flow.verdict?.action === 'block') noteClosed(d, key);
}

/** A blocked flow is over: nothing of it passes. It lingers like a closed one, counted as blocked
 *  and not live, then leaves, whether or not the extension sends `end`; each new report of it (a
 *  blocked sender's next datagram) restarts the linger. */
function blockedEnd(d: Draft, old: FlowRow | undefined, flow: FlowRecord): Pick<RowChange, 'closedAt' | 'endReason' | 'rxRate' | 'txRate'> {
  if (flow.verdict?.action !== 'block') return {};
  return { closedAt: d.now, endReason: old?.endReason, rxRate: 0, txRate: 0 };
}

function noteClosed(d: Draft, key: string): void {
  const row = d.flows.get(key);
  if (row?.closedAt !== undefined) d.closed.push({ key, at: row.closedAt });
}

/** Drops every row of `source` (a new connection's snapshot replaces them). */
/** A new SourceInfo object for a source whose rules changed in place, so readers comparing the
 *  object see the change. */
function touchSource(d: Draft, source: string): void {
  const info = d.sources.get(source);
  if (info) d.sources.set(source, { ...info });
}

function forgetSource(d: Draft, source: string): void {
  const prefix = `${source}#`;
  const keys: string[] = [];
  for (const key of d.flows.keys()) if (key.startsWith(prefix)) keys.push(key);
  for (const key of keys) removeRow(d, key);
}

function applyBytes(d: Draft, source: string, counters: ReadonlyArray<{ id: string; rx: number; tx: number }>, time: number): void {
  let drx = 0;
  let dtx = 0;
  for (const c of counters) {
    const row = d.flows.get(flowKey(source, c.id));
    if (!row) continue;
    // The first sample is a baseline, not traffic: a connection that was open before the extension
    // (or flowtop) started reports everything it moved in its life, and dividing that by the moments
    // since it was first seen gave rates such as 2.0G/s at age 0 s. Rates start with the second.
    if (row.bytesTime === undefined) {
      setCounters(d, row, c.rx, c.tx, 0, 0, time);
      continue;
    }
    const seconds = Math.max((time - row.bytesTime) / 1000, 0.001);
    // Counters are cumulative; a smaller value means the extension restarted counting.
    const rxDelta = Math.max(c.rx - row.rx, 0);
    const txDelta = Math.max(c.tx - row.tx, 0);
    drx += rxDelta;
    dtx += txDelta;
    // Whole bytes per second: small integers are stored in the row itself, while a fractional
    // rate makes V8 box the field in a separate 16-byte number for every row.
    setCounters(d, row, c.rx, c.tx, Math.round(rxDelta / seconds), Math.round(txDelta / seconds), time);
  }
  if (drx || dtx) {
    d.totals = { rx: d.totals.rx + drx, tx: d.totals.tx + dtx };
    // The rate window runs on flowtop's clock (ticks), not the extension's.
    const last = d.traffic[d.traffic.length - 1];
    if (last && last.time === d.now) d.traffic[d.traffic.length - 1] = { time: d.now, rx: last.rx + drx, tx: last.tx + dtx };
    else d.traffic.push({ time: d.now, rx: drx, tx: dtx });
    pruneTraffic(d);
  }
}

function endFlow(d: Draft, key: string, time: number, reason: string | undefined): void {
  const row = d.flows.get(key);
  if (!row) return;
  if (row.closedAt !== undefined) {
    // Already over because it was blocked: keep its linger, take the extension's words for how it ended.
    if (reason !== undefined && flowPhase(row) === 'blocked' && reason !== row.endReason) replaceRow(d, row, { endReason: reason });
    return;
  }
  replaceRow(d, row, { closedAt: time, endReason: reason, rxRate: 0, txRate: 0 });
  d.closed.push({ key, at: time });
}

function applyAttributions(d: Draft, updates: readonly AttributionUpdate[]): void {
  if (updates.length === 0) return;
  let changed: Set<string> | undefined;
  for (const u of updates) {
    // The attributor hands out its cached object again for a known token: nothing new to apply.
    if (d.attributions.get(u.key) === u.attribution) continue;
    d.attributions.set(u.key, u.attribution);
    (changed ??= new Set()).add(u.key);
  }
  if (!changed) return;
  // One pass over the table per batch of updates (the attributor batches them).
  for (const row of d.flows.values()) {
    const { token, appToken } = row.flow;
    const hitToken = token !== undefined && changed.has(token);
    const hitApp = appToken !== undefined && appToken !== token && changed.has(appToken);
    if (!hitToken && !hitApp) continue;
    // Another machine's token: a local answer for the same bytes says nothing about it.
    if (d.sources.get(row.source)?.fleet?.role === 'host') continue;
    replaceRow(d, row, {
      attribution: hitToken ? d.attributions.get(token!)! : row.attribution,
      appAttribution: hitApp ? d.attributions.get(appToken!)! : row.appAttribution,
    });
  }
  pruneAttributions(d);
}

/** Attributions only matter while a flow refers to them; keep the map from growing without end. */
function pruneAttributions(d: Draft): void {
  if (d.attributions.size <= d.options.maxFlows * 2 + 1024) return;
  const used = new Set<string>();
  for (const row of d.flows.values()) {
    if (row.flow.token) used.add(row.flow.token);
    if (row.flow.appToken) used.add(row.flow.appToken);
  }
  for (const key of d.attributions.keys()) if (!used.has(key)) d.attributions.delete(key);
}

function expireClosed(d: Draft): void {
  let drop = 0;
  while (drop < d.closed.length) {
    const { key, at } = d.closed[drop]!;
    const row = d.flows.get(key);
    // Stale entries (the row left, or ended again later and has a newer entry) are just dropped.
    if (row && row.closedAt === at) {
      if (d.now - at < d.options.lingerMs) break;
      removeRow(d, key);
    }
    drop++;
  }
  if (drop > 0) d.closed.splice(0, drop);
}

function enforceBound(d: Draft): void {
  let over = d.flows.size - d.options.maxFlows;
  if (over <= 0) return;
  // Closed flows leave first, oldest closed first.
  let drop = 0;
  while (over > 0 && drop < d.closed.length) {
    const { key, at } = d.closed[drop++]!;
    if (d.flows.get(key)?.closedAt === at && removeRow(d, key)) {
      over--;
      d.evicted++;
    }
  }
  d.closed.splice(0, drop);
  if (over <= 0) return;
  // Then the oldest flows by first sight (Map insertion order).
  for (const key of d.flows.keys()) {
    if (over <= 0) break;
    removeRow(d, key);
    d.evicted++;
    over--;
  }
}

function pruneTraffic(d: Draft): void {
  const from = d.now - d.options.rateWindowMs;
  let drop = 0;
  while (drop < d.traffic.length && d.traffic[drop]!.time < from) drop++;
  if (drop > 0) d.traffic.splice(0, drop);
}
