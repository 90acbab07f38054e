// The filter: a row passes when every term of the query matches it (see query.ts). Text terms match
// what the row shows — process, user, remote `host:port` and `address:port`, the port alone, local
// endpoint, state word, protocol, direction, PID — as typed (case-insensitive substring). Only when
// nothing in the table contains a text term does it match fuzzily (`crl` finds curl; a typo such as
// `frefox` finds firefox), and then against the DISTINCT process identities and hosts: fuse.js over
// 100,000 rows takes hundreds of milliseconds a query, over a few thousand entries a few.
import Fuse from 'fuse.js';
import { flowPhase, displayName, hintedUserNames, isOver, processKey, userLabel, type HintedUser } from './derive.js';
import { isSubsequence, parseQuery, type FieldKey, type QueryTerm } from './query.js';
import type { FlowRow, TableState } from './types.js';
import { knownHosts, sourceHost } from './hosts.js';

interface Entry {
  key: string;
  /** What a fuzzy term is compared with: a process name, or a host name / address. */
  name: string;
  path: string;
}

export interface FilterSpec {
  query: string;
  /** `!`: only flows whose attribution is not secure. */
  onlyInsecure: boolean;
}

export type RowPredicate = (row: FlowRow) => boolean;

/** The state as the STATE column says it, plus the phase underneath (a blocked flow that ended shows
 *  `blocked` and is also `closed`). */
export function stateWords(row: FlowRow): readonly string[] {
  const phase = flowPhase(row);
  return phase === 'blocked' && isOver(row) ? ['blocked', 'closed'] : [phase];
}

function endpointText(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port} ${address}:${port}` : `${address}:${port}`;
}

/** Everything the row shows, lower-cased, one field per line. */
function rowText(row: FlowRow, hinted: HintedUser): string {
  const f = row.flow;
  const a = row.attribution;
  const parts = [
    displayName(row),
    a.path ?? '',
    a.identity ?? '',
    row.appAttribution?.path ?? '',
    userLabel(row, hinted) ?? '',
    f.remoteHost ? `${f.remoteHost.name}:${f.remote.port}` : '',
    endpointText(f.remote.address, f.remote.port),
    endpointText(f.local.address, f.local.port),
    stateWords(row).join(' '),
    f.protocol,
    f.direction === 'outbound' ? 'out' : 'in',
    String(a.pid ?? f.pid ?? ''),
  ];
  return parts.join('\n').toLowerCase();
}

function fieldMatches(row: FlowRow, key: FieldKey, value: string, hinted: HintedUser): boolean {
  const f = row.flow;
  switch (key) {
    case 'port': {
      const port = /^\d{1,5}$/.test(value) ? Number(value) : -1;
      return f.remote.port === port || f.local.port === port;
    }
    case 'state':
      return stateWords(row).includes(value);
    case 'user': {
      const uid = row.attribution.uid ?? f.uid;
      return userLabel(row, hinted)?.toLowerCase() === value || (uid !== undefined && String(uid) === value);
    }
    case 'proto':
      return f.protocol === value;
    case 'host': {
      const name = f.remoteHost?.name.toLowerCase();
      const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
      return f.remote.address.toLowerCase() === bare || (name !== undefined && (name === value || name.endsWith(`.${value}`)));
    }
    case 'pid': {
      const pid = row.attribution.pid ?? f.pid;
      return pid !== undefined && String(pid) === value;
    }
    case 'dir':
      return f.direction === 'outbound' ? value === 'out' || value === 'outbound' : value === 'in' || value === 'inbound';
    case 'trust':
      return row.attribution.trust === value;
  }
}

function addEntry(entries: Map<string, Entry>, key: string, name: string, path: string): void {
  if (!entries.has(key)) entries.set(key, { key, name: name.toLowerCase(), path: path.toLowerCase() });
}

/** Distinct processes and remotes in the table, for fuzzy terms. */
export function filterEntries(state: TableState): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const row of state.flows.values()) {
    const a = row.attribution;
    addEntry(entries, processKey(a, row.flow.token), a.name ?? displayName(row), a.path ?? '');
    if (row.appAttribution) addEntry(entries, processKey(row.appAttribution, row.flow.appToken), row.appAttribution.name ?? '', row.appAttribution.path ?? '');
    addEntry(entries, `remote:${row.flow.remote.address}`, row.flow.remoteHost?.name ?? row.flow.remote.address, '');
  }
  return entries;
}

/** Keeps per-row text and the fuzzy index across frames (rows are new objects when what they show
 *  changes, so a row's text never goes stale). */
export class FlowFilter {
  private readonly texts = new WeakMap<FlowRow, string>();
  private fuzzy?: { rev: number; flows: Map<string, FlowRow>; signature: string; entries: Entry[]; fuse: Fuse<Entry> };

  predicate(state: TableState, spec: FilterSpec): RowPredicate | undefined {
    const terms = parseQuery(spec.query);
    if (terms.length === 0 && !spec.onlyInsecure) return undefined;
    const tests = terms.map((t) => this.termTest(state, t));
    const matches: RowPredicate = (row) => {
      for (const test of tests) if (!test(row)) return false;
      return true;
    };
    if (!spec.onlyInsecure) return matches;
    return (row) => (row.attribution.trust !== 'secure' || (row.appAttribution !== undefined && row.appAttribution.trust !== 'secure')) && matches(row);
  }

  private text(row: FlowRow, hinted: HintedUser): string {
    let t = this.texts.get(row);
    if (t === undefined) {
      t = rowText(row, hinted);
      this.texts.set(row, t);
    }
    return t;
  }

  private termTest(state: TableState, term: QueryTerm): RowPredicate {
    const hinted = hintedUserNames(state);
    if (term.kind === 'field') {
      // `host:NAME` naming one of the machines the flows come from (a fleet host, an extension's
      // hello.host) selects that machine's flows; any other name is the remote host, as before.
      if (term.key === 'host' && knownHosts(state.sources.values()).has(term.value)) {
        const name = term.value;
        return (row) => sourceHost(state.sources.get(row.source))?.toLowerCase() === name;
      }
      return (row) => fieldMatches(row, term.key, term.value, hinted);
    }
    const needle = term.text;
    const contains: RowPredicate = (row) => this.text(row, hinted).includes(needle);
    // What people mean when something contains the text as typed ("8000", "10.1.3", "/usr/sbin").
    for (const row of state.flows.values()) if (contains(row)) return contains;
    const keys = this.fuzzyKeys(state, needle);
    return (row) =>
      keys.has(processKey(row.attribution, row.flow.token)) ||
      (row.appAttribution !== undefined && keys.has(processKey(row.appAttribution, row.flow.appToken))) ||
      keys.has(`remote:${row.flow.remote.address}`);
  }

  private fuzzyKeys(state: TableState, needle: string): Set<string> {
    if (!this.fuzzy || this.fuzzy.rev !== state.rev || this.fuzzy.flows !== state.flows) {
      const found = filterEntries(state);
      // The index is rebuilt only when the set of processes and hosts changed, not on every revision.
      const signature = [...found.keys()].join('\u0000');
      if (this.fuzzy?.signature === signature) this.fuzzy = { ...this.fuzzy, rev: state.rev, flows: state.flows };
      else {
        const entries = [...found.values()];
        this.fuzzy = { rev: state.rev, flows: state.flows, signature, entries, fuse: new Fuse(entries, { keys: ['name', 'path'], threshold: 0.3, ignoreLocation: true }) };
      }
    }
    const keys = new Set<string>();
    for (const e of this.fuzzy.entries) if (isSubsequence(needle, e.name)) keys.add(e.key);
    for (const hit of this.fuzzy.fuse.search(needle)) keys.add(hit.item.key);
    return keys;
  }
}
