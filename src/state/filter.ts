// The fuzzy filter. fuse.js over 100,000 rows takes hundreds of milliseconds a query, so the index
// holds the DISTINCT process identities and remote hosts (hundreds to a few thousand entries); a
// query picks the matching ones, and the flows that belong to them pass.
import Fuse from 'fuse.js';
import { processKey } from './derive.js';
import type { FlowRow, TableState } from './types.js';

interface ProcessEntry {
  kind: 'process';
  key: string;
  name: string;
  path: string;
  identity: string;
  user: string;
}

interface RemoteEntry {
  kind: 'remote';
  key: string;
  host: string;
  address: string;
}

type Entry = ProcessEntry | RemoteEntry;

export interface FilterSpec {
  query: string;
  /** `!`: only flows whose attribution is not secure. */
  onlyInsecure: boolean;
}

export type RowPredicate = (row: FlowRow) => boolean;

function addProcess(entries: Map<string, Entry>, row: FlowRow, which: 'attribution' | 'appAttribution'): void {
  const a = row[which];
  if (!a) return;
  const key = processKey(a, which === 'attribution' ? row.flow.token : row.flow.appToken);
  if (entries.has(key)) return;
  entries.set(key, {
    kind: 'process',
    key,
    name: a.name ?? '',
    path: a.path ?? '',
    identity: a.identity ?? '',
    user: a.user ?? (a.uid !== undefined ? String(a.uid) : ''),
  });
}

/** Distinct searchable things in the table. */
export function filterEntries(state: TableState): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const row of state.flows.values()) {
    addProcess(entries, row, 'attribution');
    addProcess(entries, row, 'appAttribution');
    const remoteKey = `remote:${row.flow.remote.address}`;
    if (!entries.has(remoteKey)) {
      entries.set(remoteKey, { kind: 'remote', key: remoteKey, host: row.flow.remoteHost?.name ?? '', address: row.flow.remote.address });
    }
  }
  return entries;
}

function entryText(e: Entry): string {
  return (e.kind === 'process' ? `${e.name}\n${e.path}\n${e.identity}\n${e.user}` : `${e.host}\n${e.address}`).toLowerCase();
}

const FUSE_KEYS = ['name', 'path', 'identity', 'user', 'host', 'address'];

/** Keeps the fuse index across frames; rebuilds it only when the set of distinct entries changed. */
export class FlowFilter {
  private rev = -1;
  private signature = '';
  private fuse?: Fuse<Entry>;
  private entries: Entry[] = [];
  private cache?: { query: string; signature: string; keys: Set<string> };

  predicate(state: TableState, spec: FilterSpec): RowPredicate | undefined {
    const query = spec.query.trim();
    if (!query && !spec.onlyInsecure) return undefined;
    const notSecure: RowPredicate = (row) => row.attribution.trust !== 'secure' || (row.appAttribution !== undefined && row.appAttribution.trust !== 'secure');
    if (!query) return notSecure;
    const keys = this.matches(state, query);
    const matches: RowPredicate = (row) =>
      keys.has(processKey(row.attribution, row.flow.token)) ||
      (row.appAttribution !== undefined && keys.has(processKey(row.appAttribution, row.flow.appToken))) ||
      keys.has(`remote:${row.flow.remote.address}`);
    return spec.onlyInsecure ? (row) => notSecure(row) && matches(row) : matches;
  }

  private matches(state: TableState, query: string): Set<string> {
    if (state.rev !== this.rev || !this.fuse) {
      const entries = filterEntries(state);
      const signature = [...entries.keys()].join('\u0000');
      if (signature !== this.signature || !this.fuse) {
        this.entries = [...entries.values()];
        this.fuse = new Fuse(this.entries, { keys: FUSE_KEYS, threshold: 0.3, ignoreLocation: true });
        this.signature = signature;
      }
      this.rev = state.rev;
    }
    if (this.cache && this.cache.query === query && this.cache.signature === this.signature) return this.cache.keys;
    // Plain substring hits are what people mean when there are any ("10.1.3", "/usr/sbin");
    // fuzzy matching helps only when nothing contains the text as typed.
    const needle = query.toLowerCase();
    const exact = this.entries.filter((e) => entryText(e).includes(needle));
    const keys = new Set((exact.length > 0 ? exact : this.fuse.search(query).map((r) => r.item)).map((e) => e.key));
    this.cache = { query, signature: this.signature, keys };
    return keys;
  }
}
