// The non-interactive renderer: the same table state as the TUI, as JSON (one state, two renderers).
import type { Attribution } from '../attribution/types.js';
import { countFlows, displayName, flowPhase, rowRate } from '../state/derive.js';
import type { FlowRow, TableState } from '../state/types.js';
import { statusText } from '../ui/status.js';
import { trustReason } from '../ui/explain.js';

export interface FlowJson {
  source: string;
  /** The machine the flow is on: a fleet host's name, or the extension's own hello.host. */
  host?: string;
  id: string;
  time: number;
  state: ReturnType<typeof flowPhase>;
  process: string;
  direction: string;
  protocol: string;
  local: { address: string; port: number };
  remote: { address: string; port: number; host?: string };
  deadline?: number;
  verdict?: FlowRow['flow']['verdict'];
  packets?: number;
  rx: number;
  tx: number;
  rate: number;
  closedAt?: number;
  token?: string;
  appToken?: string;
  attribution: Attribution & { why?: string };
  appAttribution?: Attribution & { why?: string };
}

function withWhy(a: Attribution): Attribution & { why?: string } {
  const why = trustReason(a);
  return why ? { ...a, why } : a;
}

/** The machine a row's flow is on: the fleet host it came from, else its extension's hello.host. */
export function hostOf(state: Pick<TableState, 'sources'>, row: FlowRow): string | undefined {
  const info = state.sources.get(row.source);
  return info?.fleet?.role === 'host' ? info.id : info?.hello?.host;
}

export function flowJson(row: FlowRow, now: number, host?: string): FlowJson {
  const f = row.flow;
  return {
    source: row.source,
    ...(host !== undefined ? { host } : {}),
    id: f.id,
    time: f.time,
    state: flowPhase(row),
    process: displayName(row),
    direction: f.direction,
    protocol: f.protocol,
    local: f.local,
    remote: { ...f.remote, ...(f.remoteHost ? { host: f.remoteHost.name } : {}) },
    ...(f.pending ? { deadline: f.pending.deadline } : {}),
    ...(f.verdict ? { verdict: f.verdict } : {}),
    ...(f.packets !== undefined ? { packets: f.packets } : {}),
    rx: row.rx,
    tx: row.tx,
    rate: rowRate(row, now),
    ...(row.closedAt !== undefined ? { closedAt: row.closedAt } : {}),
    ...(f.token ? { token: f.token } : {}),
    ...(f.appToken ? { appToken: f.appToken } : {}),
    attribution: withWhy(row.attribution),
    ...(row.appAttribution ? { appAttribution: withWhy(row.appAttribution) } : {}),
  };
}

export function snapshotJson(state: TableState) {
  const sources = [...state.sources.values()].map((s) => ({
    id: s.id,
    status: statusText(s.status, state.now).text,
    ...(s.fleet ? { fleet: s.fleet.role } : {}),
    ...(s.hello ? { extension: s.hello.extension, host: s.hello.host, platform: s.hello.platform, capabilities: s.hello.capabilities } : {}),
    rules: s.rules.list(),
  }));
  const counts = countFlows(state);
  return {
    time: state.now,
    sources,
    counts,
    flows: [...state.flows.values()].map((r) => flowJson(r, state.now, hostOf(state, r))),
  };
}
