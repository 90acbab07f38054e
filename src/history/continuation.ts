// Flows the TUI's passive monitor still had open when flowtop quit, continued by the next run as the
// same row instead of recorded a second time.
//
// At quit the open flows are noted in the file (meta `monitor-open`: this boot's id, and each flow's
// monitor id, start and remote). The next run's monitor sees them again in its first snapshot, under
// the same id (a socket cookie: unique for the boot): it hands the recorder each with the noted start,
// so the new row starts where the first did, and once that row is written the first row (left without
// an end) is removed and its start minute's count of new connections given back (the new row counts it
// again). The new row carries the flow on: its end, and its bytes (the socket's counters, whole).
import type Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { expectErrno } from '../errno.js';
import { HistoryRefused, ROLLUPS, closeHistoryDatabase, hasHourlyBuckets, openHistoryDatabase } from './schema.js';

const META_KEY = 'monitor-open';
/** Most flows noted at quit (a busy machine's long-lived connections fit; more are recorded anew). */
const MAX_NOTED = 10_000;

/** A flow open at quit, as the monitor named it. */
export interface OpenFlowNote {
  id: string;
  /** ms since the epoch: its row's start. */
  start: number;
  raddr: string;
  rport: number;
}

/** This boot's id (socket cookies, and so the monitor's flow ids, are unique within one boot). */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch (error) {
    expectErrno(error, ['ENOENT', 'EACCES']); // not Linux, or no /proc: nothing is continued
    return undefined;
  }
}

/** The flows the last run left open, by id, when it ran in this boot; empty when none (or no file). */
export function readLeftOpen(path: string, boot = bootId()): Map<string, OpenFlowNote> {
  const left = new Map<string, OpenFlowNote>();
  if (boot === undefined) return left;
  let db: Database.Database;
  try {
    db = openHistoryDatabase(path, { readonly: true });
  } catch (error) {
    if (!(error instanceof HistoryRefused)) throw error;
    return left; // no file yet, or one the writer will refuse and say why
  }
  try {
    const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(META_KEY) as { value: string } | undefined;
    const noted = row ? parseNotes(row.value) : undefined;
    if (noted?.boot === boot) for (const n of noted.flows) left.set(n.id, n);
  } finally {
    db.close();
  }
  return left;
}

function parseNotes(text: string): { boot: string; flows: OpenFlowNote[] } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return undefined; // not ours to mend: the next quit writes it anew
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { boot, flows } = v as { boot?: unknown; flows?: unknown };
  if (typeof boot !== 'string' || !Array.isArray(flows)) return undefined;
  const out: OpenFlowNote[] = [];
  for (const f of flows as unknown[]) {
    const n = f as Partial<OpenFlowNote> | null;
    if (n && typeof n.id === 'string' && Number.isSafeInteger(n.start) && typeof n.raddr === 'string' && Number.isInteger(n.rport)) {
      out.push({ id: n.id, start: n.start!, raddr: n.raddr, rport: n.rport! });
    }
  }
  return { boot, flows: out };
}

/** Removes the first row of each continued flow whose new row is written; returns those still waiting
 *  for theirs. Runs beside the writer (WAL: one transaction, waiting its turn). */
export function mergeContinued(path: string, waiting: readonly OpenFlowNote[]): OpenFlowNote[] {
  if (waiting.length === 0) return [];
  const db = openHistoryDatabase(path);
  try {
    return db.transaction(() => waiting.filter((n) => !mergeOne(db, n)))();
  } finally {
    db.close();
  }
}

/** Notes the flows open now (at quit, the writer closed), replacing what the last run noted; the file
 *  is left standing alone, as the writer leaves it. */
export function noteOpenFlows(path: string, open: Iterable<OpenFlowNote>, boot = bootId()): void {
  if (boot === undefined) return;
  const flows: OpenFlowNote[] = [];
  for (const n of open) {
    if (flows.length >= MAX_NOTED) break;
    flows.push(n);
  }
  const db = openHistoryDatabase(path);
  try {
    db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(META_KEY, JSON.stringify({ boot, flows }));
  } finally {
    closeHistoryDatabase(db);
  }
}

interface FlowRowIds {
  id: number;
  dur: number | null;
  ident: number | null;
  uid: number | null;
  host: number | null;
  raddr: number;
}

function mergeOne(db: Database.Database, n: OpenFlowNote): boolean {
  const rows = db.prepare(`SELECT f.id, f.dur, f.ident, f.uid, f.host, f.raddr FROM flows f JOIN addrs a ON a.id = f.raddr
    WHERE f.start = ? AND a.addr = ? AND f.rport = ? ORDER BY f.id`).all(n.start, n.raddr, n.rport) as FlowRowIds[];
  const first = rows.find((r) => r.dur === null);
  const next = first && rows.find((r) => r.id > first.id);
  if (!first) return true; // nothing left to merge (pruned, or merged already)
  if (!next) return false; // its new row is not written yet
  db.prepare('DELETE FROM flows WHERE id = ?').run(first.id);
  // The first row's connection was counted in its start minute; the new row counts it there again.
  const minute = Math.floor(n.start / 60_000);
  const hostId = first.host ?? (db.prepare('SELECT id FROM hosts WHERE name = ?').get(n.raddr) as { id: number } | undefined)?.id;
  const tiers = [{ suffix: '', unit: 'minute', minutes: 1 }, ...(hasHourlyBuckets(db) ? ROLLUPS.map((r) => ({ suffix: `_${r.unit}`, unit: r.unit, minutes: r.minutes })) : [])];
  for (const t of tiers) {
    const at = Math.floor(minute / t.minutes);
    db.prepare(`UPDATE traffic${t.suffix} SET flows = flows - 1 WHERE ${t.unit} = ? AND ident = ? AND uid = ? AND flows > 0`).run(at, first.ident ?? 0, first.uid ?? -1);
    if (hostId !== undefined) db.prepare(`UPDATE host_traffic${t.suffix} SET flows = flows - 1 WHERE ${t.unit} = ? AND host = ? AND flows > 0`).run(at, hostId);
  }
  return true;
}
