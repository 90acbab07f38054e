// Facts derived from one row or one attribution, shared by the views, the sorter and the filter.
import type { Attribution, Trust } from '../attribution/types.js';
import type { FlowIdentity } from '../protocol/messages.js';
import type { FlowPhase, FlowRow, TableState } from './types.js';

/** A blocked flow stays `blocked` after it is over (it lingers, dimmed, like a closed one: see
 *  isOver); any other flow that ended is `closed`. */
export function flowPhase(row: FlowRow): FlowPhase {
  if (row.flow.verdict?.action === 'block') return 'blocked';
  if (row.closedAt !== undefined) return 'closed';
  if (row.flow.pending) return 'pending';
  if (row.flow.verdict) return 'allowed';
  return 'open';
}

/** Ended, or blocked: nothing of it passes any more; it lingers, dimmed, and then leaves the table. */
export function isOver(row: FlowRow): boolean {
  return row.closedAt !== undefined;
}

/** The name people see for a process, falling back to what the extension hinted. */
export function processName(a: Attribution, pid?: number): string {
  if (a.name) return a.name;
  if (a.path) return a.path.slice(a.path.lastIndexOf('/') + 1);
  if (a.trust === 'pending') return 'resolving…';
  return pid !== undefined ? `pid ${pid}` : 'unknown';
}

/** The identity the extension established for the flow's token when it connected (`flow.identity`),
 *  when this client's own lookup could not name the process: it had exited (`gone`), or the lookup
 *  failed without a name. It names the program; it never changes the row's trust (docs/security.md). */
export function extensionIdentity(row: FlowRow): FlowIdentity | undefined {
  const id = row.flow.identity;
  if (!id) return undefined;
  const a = row.attribution;
  if (a.trust === 'gone') return id;
  if (a.trust === 'insecure' && !a.name && !a.path) return id;
  return undefined;
}

/** A short name for an extension's identity: the executable's base name, else the hash's start. */
export function identityName(id: FlowIdentity): string {
  const path = id.path ?? (id.kind === 'package' ? id.value : undefined);
  if (path) return path.slice(path.lastIndexOf('/') + 1) || path;
  return id.kind === 'sha256' ? `sha256:${id.value.slice(0, 12)}` : id.value;
}

/** "App via helper" when the responsible app differs from the process that opened the flow. */
export function displayName(row: FlowRow): string {
  const agent = extensionIdentity(row);
  const own = agent ? `${identityName(agent)} (agent)` : processName(row.attribution, row.flow.pid);
  if (!row.appAttribution) return own;
  return `${processName(row.appAttribution)} via ${own}`;
}

/** Processes are grouped by code identity, never by PID; without an identity by path, then name. */
export function processKey(a: Attribution, token?: string): string {
  if (a.identity) return `id:${a.identity}`;
  if (a.path) return `path:${a.trust}:${a.path}`;
  if (a.name) return `name:${a.trust}:${a.name}`;
  if (a.trust === 'pending' && token) return `token:${token}`;
  return `unknown:${a.trust}`;
}

/** The system's name for the uid an extension sent with a flow (`flow.uid`: its word, for a process
 *  this client may never have seen), when it has one. */
export type HintedUser = (row: FlowRow) => string | undefined;

/** Names `flow.uid` with this machine's user database (`options.userName`), for flows from this
 *  machine's own extension only: a fleet host's uid numbers a user of another machine, and a local
 *  name for it would be a guess. */
export function hintedUserNames(state: Pick<TableState, 'options' | 'sources'>): HintedUser {
  const lookup = state.options.userName;
  if (!lookup) return () => undefined;
  return (row) => {
    const uid = row.flow.uid;
    if (uid === undefined || state.sources.get(row.source)?.fleet?.role === 'host') return undefined;
    return lookup(uid);
  };
}

/** The user as shown: this client's attribution's name, else its uid; without either (the process
 *  had exited, or is still being looked up), the extension's uid, named by `hinted` when it can. */
export function userLabel(row: FlowRow, hinted?: HintedUser): string | undefined {
  const a = row.attribution;
  if (a.user) return a.user;
  if (a.uid !== undefined) return String(a.uid);
  const uid = row.flow.uid;
  if (uid === undefined) return undefined;
  return hinted?.(row) ?? String(uid);
}

export function remoteLabel(row: FlowRow): string {
  return row.flow.remoteHost?.name ?? row.flow.remote.address;
}

/** Worst first, so sorting by trust puts what needs a look on top. */
export const TRUST_RANK: Record<Trust, number> = { insecure: 0, gone: 1, pending: 2, secure: 3 };

/** A flow that stopped reporting counters this long ago is not moving bytes any more. */
export const STALE_MS = 5_000;

export function rowRate(row: FlowRow, now: number): number {
  if (row.bytesTime === undefined || now - row.bytesTime > STALE_MS) return 0;
  return row.rxRate + row.txRate;
}

export interface Counts {
  total: number;
  live: number;
  pending: number;
  /** Flows with a block verdict still in the table (live or lingering after their end). */
  blocked: number;
  /** Flows that ended without being blocked, lingering before they leave. */
  closed: number;
  /** Share (0..1) of live flows whose attribution is secure; undefined when there are none. */
  secureShare?: number;
  rxRate: number;
  txRate: number;
}

/** Header figures, from the tallies the reducer keeps (nothing here walks the table). The rates
 *  are the sums of the rows' own rates per direction, so the header agrees with the rows. */
export function countFlows(state: TableState): Counts {
  const { live, pending, blocked, closed, secure, rxRate, txRate } = state.tally;
  return {
    total: state.flows.size,
    live,
    pending,
    blocked,
    closed,
    secureShare: live > 0 ? secure / live : undefined,
    // Sums of many additions and subtractions: never show a tiny negative.
    rxRate: Math.max(rxRate, 0),
    txRate: Math.max(txRate, 0),
  };
}
