// What the TUI's history view shows, read in one go from a HistoryReader: the window's ranking (programs
// or hosts, or the hosts one program talked to), each entry's traffic over the window for its
// sparkline, and its first-seen / changed marks. Plain data in and out, so it runs as well on the
// history reader's thread as inline.
import type { EventEntry, HistoryReader, ProcessRef, Series } from './query.js';

export const HISTORY_WINDOWS = [
  { id: '1h', label: '1 h', ms: 3600_000 },
  { id: '24h', label: '24 h', ms: 24 * 3600_000 },
  { id: '7d', label: '7 d', ms: 7 * 24 * 3600_000 },
  { id: '30d', label: '30 d', ms: 30 * 24 * 3600_000 },
] as const;
export type HistoryWindowId = (typeof HISTORY_WINDOWS)[number]['id'];

export function windowOf(id: HistoryWindowId): (typeof HISTORY_WINDOWS)[number] {
  return HISTORY_WINDOWS.find((w) => w.id === id) ?? HISTORY_WINDOWS[1];
}

export interface PageQuery {
  window: HistoryWindowId;
  /** Rank programs or hosts; with `identity`, the hosts that one program talked to. */
  by: 'process' | 'host';
  /** A program's key from a process page ("" for the flows whose owner was not found). */
  identity?: string;
  /** Steps in each sparkline: the width it is drawn in. */
  points: number;
  /** Most entries (default 200). */
  limit?: number;
}

export type HistoryMark = 'new' | 'changed';

export interface HistoryEntry {
  key: string;
  label: string;
  rx: number;
  tx: number;
  flows: number;
  /** Bytes (rx + tx) per step, oldest first. */
  traffic: number[];
  firstSeen?: number;
  /** new: first seen inside the window; changed: its binary changed inside the window. */
  mark?: HistoryMark;
  process?: ProcessRef;
}

export interface HistoryPage {
  query: PageQuery;
  since: number;
  until: number;
  stepMs: number;
  entries: HistoryEntry[];
  /** A program's hosts read from its newest connections only (too many in the window): from when. */
  partialSince?: number;
  /** Time the reader took, ms. */
  tookMs: number;
}

export function readHistoryPage(reader: HistoryReader, query: PageQuery, now: number): HistoryPage {
  const started = performance.now();
  const until = now + 1;
  const since = until - windowOf(query.window).ms;
  const limit = query.limit ?? 200;
  const points = Math.max(1, Math.floor(query.points));
  let ranked: Array<Omit<HistoryEntry, 'traffic'>>;
  let series: Series;
  let partialSince: number | undefined;
  if (query.identity !== undefined) {
    const hosts = reader.hostsOf({ identity: query.identity, since, until, points, limit });
    ranked = hosts.hosts;
    series = hosts.series;
    partialSince = hosts.since;
  } else {
    ranked = reader.top({ by: query.by, since, until, limit });
    series = reader.series({ by: query.by, since, until, points, keys: ranked.map((e) => e.key) });
  }
  const changed = query.by === 'process' && query.identity === undefined ? changedIdentities(reader.events({ since, until, kind: 'changed', limit: 10_000 })) : new Set<string>();
  const entries = ranked.map((e): HistoryEntry => {
    const rx = series.rx.get(e.key);
    const tx = series.tx.get(e.key);
    const traffic = rx && tx ? rx.map((v, i) => v + tx[i]!) : [];
    const mark: HistoryMark | undefined = changed.has(e.key) ? 'changed' : e.firstSeen !== undefined && e.firstSeen >= since ? 'new' : undefined;
    return { ...e, traffic, ...(mark ? { mark } : {}) };
  });
  return { query, since, until, stepMs: series.stepMs, entries, ...(partialSince !== undefined ? { partialSince } : {}), tookMs: performance.now() - started };
}

function changedIdentities(events: readonly EventEntry[]): Set<string> {
  const keys = new Set<string>();
  for (const e of events) if (e.process?.identity) keys.add(e.process.identity);
  return keys;
}

/** Events recorded after `after` (ms), oldest first: what to announce since the last look. */
export function readNewEvents(reader: HistoryReader, after: number, now: number): EventEntry[] {
  return reader.events({ since: after + 1, until: now + 1, limit: 100 }).reverse();
}
