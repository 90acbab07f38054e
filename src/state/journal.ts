// The table's change journal: which rows were written, retired or had their counters updated at
// which revision, so a sorter finds what changed since its last frame without walking the table.
// Kept as parallel columns rather than an object per entry: at 10,000 events/s the entry objects
// were about 40% of what survived each young-generation collection (copied, then promoted, then
// garbage), and number columns hold their values unboxed.
import type { FlowRow } from './types.js';

/** `row` was written (added or replaced another) at the entry's revision. */
export const WRITTEN = 0;
/** `row` left the table (replaced or removed). */
export const GONE = 1;
/** `row`'s counters were updated in place; the entry keeps the values it had before. */
export const COUNTERS = 2;
export type JournalKind = typeof WRITTEN | typeof GONE | typeof COUNTERS;

export class Journal {
  /** Revision of the step that made each entry, ascending. */
  readonly at: number[] = [];
  readonly rows: FlowRow[] = [];
  readonly kind: JournalKind[] = [];
  /** For COUNTERS entries, the row's rx, tx and rate (rxRate + txRate) before the update; else 0. */
  readonly rx: number[] = [];
  readonly tx: number[] = [];
  readonly rate: number[] = [];

  get length(): number {
    return this.at.length;
  }

  push(at: number, row: FlowRow, kind: JournalKind, rx = 0, tx = 0, rate = 0): void {
    this.at.push(at);
    this.rows.push(row);
    this.kind.push(kind);
    this.rx.push(rx);
    this.tx.push(tx);
    this.rate.push(rate);
  }

  /** Drops the `n` oldest entries in place; returns the revision of the last one dropped. */
  dropOldest(n: number): number {
    const last = this.at[n - 1]!;
    for (const column of [this.at, this.rows, this.kind, this.rx, this.tx, this.rate] as unknown[][]) {
      column.copyWithin(0, n);
      column.length -= n;
    }
    return last;
  }
}
