// Reading the traffic buckets (schema.ts): which of the per-minute, hourly and daily tables cover a
// window of minutes, as one SQL union, and rows of (key, step, rx, tx) binned into per-key series.
import { ROLLUPS } from './schema.js';

export interface TimeWindow {
  /** ms since the epoch, inclusive. */
  since: number;
  /** ms since the epoch, exclusive (default: now). */
  until?: number;
}

export interface Series {
  start: number;
  stepMs: number;
  /** Bytes per step, by key. */
  rx: Map<string, number[]>;
  tx: Map<string, number[]>;
  /** Connections per key over the window, where the query counts them. */
  flows?: Map<string, number>;
}

/** A row to bin: a key's bytes (and connections, where counted) in one step. */
export interface StepRow {
  key: string;
  step: number;
  rx: number;
  tx: number;
  flows?: number;
}

/** The minutes a window covers, [first, end). */
export function minutes(w: TimeWindow): [number, number] {
  return [Math.floor(w.since / 60_000), Math.ceil((w.until ?? untilNow()) / 60_000)];
}

/** The default end of a window: now, this millisecond included. */
export function untilNow(): number {
  return Date.now() + 1;
}

/** The buckets of minutes [from, to) as rows (minute, columns, rx, tx, flows): the whole days
 *  inside from the daily table, the whole hours left from the hourly one, the edges from the
 *  minutes (a coarser row stands at its first minute). Over 30 days that reads ~30 day rows per key
 *  instead of ~43,000 minute rows. `hourly`: whether the file has the coarser tables (one written
 *  before they existed has not); `unit` (minutes): the coarsest rows the caller can use. */
export function bucketRows(table: 'traffic' | 'host_traffic', columns: string, from: number, to: number, hourly: boolean, unit = 1440): { sql: string; args: number[] } {
  const tiers = hourly ? ROLLUPS.filter((r) => r.minutes <= unit && unit % r.minutes === 0) : [];
  const parts: string[] = [];
  const args: number[] = [];
  const add = (lo: number, hi: number, tier: number): void => {
    if (lo >= hi) return;
    const t = tiers[tier];
    if (!t) {
      parts.push(`SELECT minute, ${columns}, rx, tx, flows FROM ${table} WHERE minute >= ? AND minute < ?`);
      args.push(lo, hi);
      return;
    }
    const first = Math.ceil(lo / t.minutes);
    const end = Math.floor(hi / t.minutes);
    if (end <= first) return add(lo, hi, tier + 1);
    add(lo, first * t.minutes, tier + 1);
    parts.push(`SELECT ${t.unit} * ${t.minutes} AS minute, ${columns}, rx, tx, flows FROM ${table}_${t.unit} WHERE ${t.unit} >= ? AND ${t.unit} < ?`);
    args.push(first, end);
    add(end * t.minutes, hi, tier + 1);
  };
  add(from, to, 0);
  if (parts.length === 0) return { sql: `SELECT minute, ${columns}, rx, tx, flows FROM ${table} WHERE 0`, args: [] };
  return { sql: parts.join('\n        UNION ALL '), args };
}

/** Rows of (key, step, rx, tx) into per-key arrays of `points` steps (a step out of range is counted
 *  in the nearest one). */
export function binSeries(rows: Iterable<StepRow>, start: number, stepMs: number, points: number): Series {
  const rx = new Map<string, number[]>();
  const tx = new Map<string, number[]>();
  const flows = new Map<string, number>();
  for (const r of rows) {
    const i = Math.min(points - 1, Math.max(0, Math.floor(r.step)));
    if (r.flows !== undefined) flows.set(r.key, (flows.get(r.key) ?? 0) + r.flows);
    let a = rx.get(r.key);
    let b = tx.get(r.key);
    if (!a || !b) {
      a = new Array<number>(points).fill(0);
      b = new Array<number>(points).fill(0);
      rx.set(r.key, a);
      tx.set(r.key, b);
    }
    a[i]! += r.rx;
    b[i]! += r.tx;
  }
  return { start, stepMs, rx, tx, ...(flows.size > 0 ? { flows } : {}) };
}
