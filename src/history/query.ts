// Reading the history: the query API behind `flowtop history` and the TUI's history view. Opens the
// file read-only (a reader never blocks the writer: WAL), answers from the per-minute buckets where it
// can (rankings, series; traffic-buckets.ts) and from the flows table for lists. See docs/history.md.
import type Database from 'better-sqlite3';
import { ACTION_CODES, BY_CODES, DECIDER_PREFIX, FLOW_ID_PER_MS, PROTOCOL_CODES, TRUST_CODES, ROLLUPS, hasHourlyBuckets, openHistoryDatabase, type TrustCode } from './schema.js';
import { KIND_INBOUND, KIND_IPV6, type HistoryEventKind } from './batch.js';
import { binSeries, bucketRows, minutes, untilNow, type Series, type StepRow, type TimeWindow } from './traffic-buckets.js';

export type { Series, TimeWindow } from './traffic-buckets.js';

export interface FlowQuery extends TimeWindow {
  /** A program's name or path (exact name, or a path ending in /NAME). */
  process?: string;
  /** An identity key as shown by `history top --by process --json` ("sha256:…", "package:…", "path:…"). */
  identity?: string;
  /** A host name, exactly, or a remote address. */
  host?: string;
  /** A registrable domain: the host names under it. */
  domain?: string;
  action?: 'allow' | 'block';
  /** Most rows returned, newest first (default 1000). */
  limit?: number;
}

export interface ProcessRef {
  /** The identity key; absent when no owner was found. */
  identity?: string;
  name?: string;
  path?: string;
}

export interface FlowEntry {
  start: number;
  end?: number;
  process: ProcessRef;
  trust: TrustCode;
  uid?: number;
  parent?: string;
  protocol: (typeof PROTOCOL_CODES)[number];
  direction: 'outbound' | 'inbound';
  family: 'ipv4' | 'ipv6';
  remote: { address: string; port: number };
  host?: string;
  action: (typeof ACTION_CODES)[number];
  by: (typeof BY_CODES)[number];
  rule?: string;
  /** Who decided, when a person did and the extension said (verdict.decider). */
  decider?: string;
  rx?: number;
  tx?: number;
}

export type TopBy = 'process' | 'host' | 'domain' | 'user';

export interface TopQuery extends TimeWindow {
  by: TopBy;
  limit?: number;
}

export interface TopEntry {
  /** What the entry is keyed by: an identity key (process; "" for no owner), a host name or address,
   *  a domain, or a UID as text. */
  key: string;
  /** What to call it. */
  label: string;
  rx: number;
  tx: number;
  flows: number;
  /** For processes: when the program was first seen. */
  firstSeen?: number;
  process?: ProcessRef;
}

export interface SeriesQuery extends TimeWindow {
  by: 'process' | 'host';
  /** Only these keys (identity keys or host names); all when absent. */
  keys?: readonly string[];
  /** Points in the series (the window cut into equal steps), 1…1440. */
  points: number;
}

export interface EventEntry {
  time: number;
  kind: HistoryEventKind;
  process?: ProcessRef;
  rule?: string;
  detail: string;
}

const SELECT_FLOWS = `
SELECT f.start, f.dur, f.trust, f.uid, f.kind, f.rport, f.verdict, f.rx, f.tx,
       i.key AS ikey, i.name AS iname, ip.path AS ipath, pp.path AS parent, a.addr, h.name AS host, r.rule_id
FROM flows f
LEFT JOIN identities i ON i.id = f.ident
LEFT JOIN paths ip ON ip.id = i.path
LEFT JOIN paths pp ON pp.id = f.parent
JOIN addrs a ON a.id = f.raddr
LEFT JOIN hosts h ON h.id = f.host
LEFT JOIN rules r ON r.id = f.rule`;

interface FlowRowOut {
  start: number; dur: number | null; trust: number; uid: number | null; kind: number; rport: number; verdict: number;
  rx: number | null; tx: number | null; ikey: string | null; iname: string | null; ipath: string | null; parent: string | null;
  addr: string; host: string | null; rule_id: string | null;
}

/** The steps a window is cut into for `asked` marks: their length, the first's start (minutes since
 *  the epoch) and how many. A step of more than half a day is whole days from the start of a (UTC)
 *  day, of more than half an hour whole hours from the start of an hour: then each daily or hourly
 *  bucket falls into one step (24 h in 33 points is 24 hours, not 33 steps of 44 minutes read from
 *  1,440 minutes of buckets). Shorter steps are whole minutes; a window shorter than `asked` minutes
 *  gets one step a minute (fewer than asked).
 *  The steps are laid back from the end of the unit that holds the window's last minute: the newest
 *  step is the one now is in, and as long as every other. (Laid forward from the window's start, the
 *  grid could need one step more than there are marks, and the newest two were then drawn as one:
 *  8 h under "one mark = 4 h".) What the first step leaves out of the window's start is counted in it. */
export function stepsOf(q: TimeWindow, asked: number): { start: number; stepMinutes: number; points: number } {
  const until = q.until ?? untilNow();
  const marks = Math.min(1440, Math.max(1, Math.floor(asked)));
  const [from, to] = minutes(q);
  let stepMinutes = Math.max(1, Math.ceil((until - q.since) / marks / 60_000));
  let unit = 1;
  for (const r of ROLLUPS) {
    if (stepMinutes > r.minutes / 2) {
      stepMinutes = Math.ceil(stepMinutes / r.minutes) * r.minutes;
      unit = r.minutes;
      break;
    }
  }
  const end = Math.ceil(to / unit) * unit;
  const points = Math.min(marks, Math.max(1, Math.ceil((end - from) / stepMinutes)));
  return { start: end - points * stepMinutes, stepMinutes, points };
}

export class HistoryReader {
  /** Whether the file keeps hourly buckets (one written before they existed does not). */
  private readonly hourly: boolean;
  /** PRAGMA schema_version when opened: a writer that adds tables later (the hourly buckets to an
   *  older file) changes it, and what this reader decided from the schema is then stale. */
  private readonly schema: number;
  /** How a window of start times reads the flows table: schema 2 keeps the start inside the id
   *  (ranges of ids, the table's own order), schema 1 in an indexed column. */
  private readonly time: { column: string; perMs: number };

  private constructor(private readonly db: Database.Database, readonly path: string) {
    this.schema = db.pragma('schema_version', { simple: true }) as number;
    this.hourly = hasHourlyBuckets(db);
    this.time = (db.pragma('user_version', { simple: true }) as number) >= 2 ? { column: 'f.id', perMs: FLOW_ID_PER_MS } : { column: 'f.start', perMs: 1 };
  }

  /** Whether a writer changed the file's schema since this reader opened it (reopen to see it). */
  schemaChanged(): boolean {
    return (this.db.pragma('schema_version', { simple: true }) as number) !== this.schema;
  }

  /** Opens a history file for reading; throws HistoryRefused (with the reason) when it is not one. */
  static open(path: string): HistoryReader {
    return new HistoryReader(openHistoryDatabase(path, { readonly: true }), path);
  }

  close(): void {
    this.db.close();
  }

  flows(q: FlowQuery): FlowEntry[] {
    const t = this.time;
    const where = [`${t.column} >= ?`, `${t.column} < ?`];
    const args: Array<string | number> = [Math.ceil(q.since) * t.perMs, Math.ceil(q.until ?? untilNow()) * t.perMs];
    if (q.identity !== undefined) {
      where.push('i.key = ?');
      args.push(q.identity);
    }
    if (q.process !== undefined) {
      where.push("(i.name = ? OR ip.path = ? OR ip.path LIKE ? ESCAPE '\\')");
      args.push(q.process, q.process, `%/${likeEscape(q.process)}`);
    }
    if (q.host !== undefined) {
      where.push('(h.name = ? OR a.addr = ?)');
      args.push(q.host, q.host);
    }
    if (q.domain !== undefined) {
      where.push('f.host IN (SELECT id FROM hosts WHERE domain = ? OR name = ?)');
      args.push(q.domain, q.domain);
    }
    if (q.action !== undefined) where.push(`(f.verdict & 3) = ${ACTION_CODES.indexOf(q.action)}`);
    const sql = `${SELECT_FLOWS} WHERE ${where.join(' AND ')} ORDER BY ${t.column} DESC LIMIT ?`;
    args.push(q.limit ?? 1000);
    return (this.db.prepare(sql).all(...args) as FlowRowOut[]).map(flowEntry);
  }

  top(q: TopQuery): TopEntry[] {
    const [from, to] = minutes(q);
    const limit = q.limit ?? 20;
    switch (q.by) {
      case 'process': {
        const b = bucketRows('traffic', 'ident, uid', from, to, this.hourly);
        const rows = this.db.prepare(`
          SELECT t.ident, sum(t.rx) AS rx, sum(t.tx) AS tx, sum(t.flows) AS flows, i.key, i.name, p.path, i.first_seen
          FROM (SELECT ident, sum(rx) AS rx, sum(tx) AS tx, sum(flows) AS flows FROM (${b.sql}) GROUP BY ident) t
          LEFT JOIN identities i ON i.id = t.ident LEFT JOIN paths p ON p.id = i.path
          GROUP BY t.ident ORDER BY sum(t.rx) + sum(t.tx) DESC, sum(t.flows) DESC LIMIT ?`).all(...b.args, limit) as Array<{ rx: number; tx: number; flows: number; key: string | null; name: string | null; path: string | null; first_seen: number | null }>;
        return rows.map((r) => {
          const process = processRef(r.key, r.name, r.path);
          return { key: r.key ?? '', label: r.name ?? r.path ?? r.key ?? '(owner not found)', rx: r.rx, tx: r.tx, flows: r.flows, process, ...(r.first_seen !== null ? { firstSeen: r.first_seen } : {}) };
        });
      }
      case 'user': {
        const b = bucketRows('traffic', 'ident, uid', from, to, this.hourly);
        const rows = this.db.prepare(`SELECT uid, sum(rx) AS rx, sum(tx) AS tx, sum(flows) AS flows FROM (${b.sql})
          GROUP BY uid ORDER BY sum(rx) + sum(tx) DESC, sum(flows) DESC LIMIT ?`).all(...b.args, limit) as Array<{ uid: number; rx: number; tx: number; flows: number }>;
        return rows.map((r) => ({ key: String(r.uid), label: r.uid < 0 ? '(unknown)' : String(r.uid), rx: r.rx, tx: r.tx, flows: r.flows }));
      }
      case 'host':
      case 'domain': {
        const group = q.by === 'host' ? 'h.name' : 'coalesce(h.domain, h.name)';
        const b = bucketRows('host_traffic', 'host', from, to, this.hourly);
        const rows = this.db.prepare(`SELECT ${group} AS key, sum(t.rx) AS rx, sum(t.tx) AS tx, sum(t.flows) AS flows
          FROM (SELECT host, sum(rx) AS rx, sum(tx) AS tx, sum(flows) AS flows FROM (${b.sql}) GROUP BY host) t
          JOIN hosts h ON h.id = t.host GROUP BY ${group} ORDER BY sum(t.rx) + sum(t.tx) DESC, sum(t.flows) DESC LIMIT ?`).all(...b.args, limit) as Array<{ key: string; rx: number; tx: number; flows: number }>;
        return rows.map((r) => ({ key: r.key, label: r.key, rx: r.rx, tx: r.tx, flows: r.flows }));
      }
    }
  }

  /** Bytes over the window in `points` equal steps, per identity key or host name (for sparklines).
   *  Summed by SQLite per key and step, so the rows that reach JavaScript are keys x points, not the
   *  window's buckets (over 30 days: ~43,000 minutes per busy key). A step is at least a minute: a
   *  window shorter than `points` minutes gets one point per minute (fewer than asked). */
  series(q: SeriesQuery): Series {
    // One "now" for the buckets read and the steps they go into.
    const window: TimeWindow = { since: q.since, until: q.until ?? untilNow() };
    const [from, to] = minutes(window);
    const { start, stepMinutes, points } = stepsOf(window, q.points);
    const stepMs = stepMinutes * 60_000;
    let only = '';
    const keyArgs: string[] = [];
    if (q.keys) {
      if (q.keys.length === 0) return { start: start * 60_000, stepMs, rx: new Map(), tx: new Map() };
      const named = q.keys.filter((k) => k !== '');
      if (q.by === 'process') {
        // "" is the bucket of flows whose owner was not found (identity 0).
        const parts = [...(named.length > 0 ? [`t.ident IN (SELECT id FROM identities WHERE key IN (${named.map(() => '?').join(',')}))`] : []), ...(named.length < q.keys.length ? ['t.ident = 0'] : [])];
        only = ` WHERE (${parts.join(' OR ')})`;
      } else {
        only = ` WHERE t.host IN (SELECT id FROM hosts WHERE name IN (${named.map(() => '?').join(',') || 'NULL'}))`;
      }
      keyArgs.push(...named);
    }
    const b = q.by === 'process' ? bucketRows('traffic', 'ident, uid', from, to, this.hourly, stepMinutes) : bucketRows('host_traffic', 'host', from, to, this.hourly, stepMinutes);
    const args = [start, stepMinutes, ...b.args, ...keyArgs];
    const sql = q.by === 'process'
      ? `SELECT coalesce(i.key, '') AS key, s.step, s.rx, s.tx FROM (
           SELECT t.ident, CAST((t.minute - ?) / ? AS INTEGER) AS step, sum(t.rx) AS rx, sum(t.tx) AS tx FROM (${b.sql}) t${only}
           GROUP BY t.ident, step) s LEFT JOIN identities i ON i.id = s.ident`
      : `SELECT h.name AS key, s.step, s.rx, s.tx FROM (
           SELECT t.host, CAST((t.minute - ?) / ? AS INTEGER) AS step, sum(t.rx) AS rx, sum(t.tx) AS tx FROM (${b.sql}) t${only}
           GROUP BY t.host, step) s JOIN hosts h ON h.id = s.host`;
    return this.binned(sql, args, start * 60_000, stepMs, points);
  }

  /** The hosts (a flow without a host name: its address) one program talked to in the window, ranked
   *  by bytes then connections, with a series of each over `points` steps. Read from the flows table
   *  (the buckets are per program or per host, not both) through its (ident) index (whose entries end with the id, which holds the start), a flow's
   *  bytes counted at its start: the cost grows with the program's own flows in the window, so at
   *  most `maxFlows` (default 300,000) of them are read, the newest, and `since` then says from when. */
  hostsOf(q: TimeWindow & { identity: string; limit?: number; points: number; maxFlows?: number }): { hosts: TopEntry[]; series: Series; since?: number } {
    const until = q.until ?? untilNow();
    // The same steps as series(): a program's hosts read on the same grid as the programs.
    const steps = stepsOf({ since: q.since, until }, q.points);
    const stepMs = steps.stepMinutes * 60_000;
    const start = steps.start * 60_000;
    const points = steps.points;
    const owner = q.identity === '' ? 'f.ident IS NULL' : 'f.ident = (SELECT id FROM identities WHERE key = ?)';
    const ownerArgs = q.identity === '' ? [] : [q.identity];
    const maxFlows = Math.max(1, Math.floor(q.maxFlows ?? 300_000));
    // The start of the newest `maxFlows` flows, when there are more (read from the index alone).
    const t = this.time;
    const window = (from: number): number[] => [Math.ceil(from) * t.perMs, Math.ceil(until) * t.perMs];
    const cut = this.db.prepare(`SELECT f.start FROM flows f WHERE ${owner} AND ${t.column} >= ? AND ${t.column} < ? ORDER BY ${t.column} DESC LIMIT 1 OFFSET ?`)
      .get(...ownerArgs, ...window(q.since), maxFlows) as { start: number } | undefined;
    const since = cut ? cut.start + 1 : q.since;
    // One pass: per host and step; the ranking is the sum of its steps.
    const series = this.binned(`SELECT coalesce(h.name, a.addr) AS key, CAST((f.start - ?) / ? AS INTEGER) AS step, sum(coalesce(f.rx, 0)) AS rx, sum(coalesce(f.tx, 0)) AS tx, count(*) AS flows
      FROM flows f JOIN addrs a ON a.id = f.raddr LEFT JOIN hosts h ON h.id = f.host
      WHERE ${owner} AND ${t.column} >= ? AND ${t.column} < ? GROUP BY key, step`, [start, stepMs, ...ownerArgs, ...window(since)], start, stepMs, points);
    const hosts = [...series.rx.keys()].map((key) => ({ key, label: key, rx: sum(series.rx.get(key)!), tx: sum(series.tx.get(key)!), flows: series.flows?.get(key) ?? 0 }))
      .sort((a, b) => b.rx + b.tx - (a.rx + a.tx) || b.flows - a.flows || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .slice(0, q.limit ?? 200);
    const kept = new Set(hosts.map((h) => h.key));
    for (const key of [...series.rx.keys()]) {
      if (kept.has(key)) continue;
      series.rx.delete(key);
      series.tx.delete(key);
    }
    delete series.flows;
    return { hosts, series, ...(cut ? { since } : {}) };
  }

  /** The rows of (key, step, rx, tx) `sql` gives, binned into a series. (better-sqlite3 binds a
   *  JavaScript number as REAL, so the SQL casts the step: a REAL step would make each row a group.) */
  private binned(sql: string, args: ReadonlyArray<string | number>, start: number, stepMs: number, points: number): Series {
    return binSeries(this.db.prepare(sql).iterate(...args) as Iterable<StepRow>, start, stepMs, points);
  }

  events(q: TimeWindow & { kind?: HistoryEventKind; limit?: number }): EventEntry[] {
    const rows = this.db.prepare(`SELECT e.time, e.kind, e.rule, e.detail, i.key, i.name, p.path FROM events e
      LEFT JOIN identities i ON i.id = e.ident LEFT JOIN paths p ON p.id = i.path
      WHERE e.time >= ? AND e.time < ? ${q.kind ? 'AND e.kind = ?' : ''} ORDER BY e.time DESC, e.id DESC LIMIT ?`)
      .all(...[q.since, q.until ?? untilNow(), ...(q.kind ? [q.kind] : []), q.limit ?? 1000]) as Array<{ time: number; kind: HistoryEventKind; rule: string | null; detail: string; key: string | null; name: string | null; path: string | null }>;
    return rows.map((r) => ({
      time: r.time, kind: r.kind, detail: r.detail,
      ...(r.key !== null ? { process: processRef(r.key, r.name, r.path) } : {}),
      ...(r.rule !== null ? { rule: r.rule } : {}),
    }));
  }

  /** Flows recorded (all time), for a summary line. */
  flowCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;
  }
}

function sum(xs: readonly number[]): number {
  let total = 0;
  for (const x of xs) total += x;
  return total;
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function processRef(key: string | null, name: string | null, path: string | null): ProcessRef {
  return { ...(key !== null ? { identity: key } : {}), ...(name !== null ? { name } : {}), ...(path !== null ? { path } : {}) };
}

function flowEntry(r: FlowRowOut): FlowEntry {
  return {
    start: r.start,
    ...(r.dur !== null ? { end: r.start + r.dur } : {}),
    process: processRef(r.ikey, r.iname, r.ipath),
    trust: TRUST_CODES[r.trust] ?? 'unknown',
    ...(r.uid !== null ? { uid: r.uid } : {}),
    ...(r.parent !== null ? { parent: r.parent } : {}),
    protocol: PROTOCOL_CODES[r.kind & 3] ?? 'other',
    direction: r.kind & KIND_INBOUND ? 'inbound' : 'outbound',
    family: r.kind & KIND_IPV6 ? 'ipv6' : 'ipv4',
    remote: { address: r.addr, port: r.rport },
    ...(r.host !== null ? { host: r.host } : {}),
    action: ACTION_CODES[r.verdict & 3] ?? 'observed',
    by: BY_CODES[r.verdict >> 2] ?? 'none',
    ...(r.rule_id === null ? {} : r.rule_id.startsWith(DECIDER_PREFIX) ? { decider: r.rule_id.slice(DECIDER_PREFIX.length) } : { rule: r.rule_id }),
    ...(r.rx !== null ? { rx: r.rx } : {}),
    ...(r.tx !== null ? { tx: r.tx } : {}),
  };
}
