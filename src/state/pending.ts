// Flows that wait for a verdict are never hidden: the flows view pins every pending flow of the
// live table at its top, whatever the filter, `!`, the sort or a freeze, and the window keeps the
// pinned rows on screen while the rest scrolls (see stickyWindow).
import { flowPhase } from './derive.js';
import type { FlowRow, TableState } from './types.js';

const pendingOf = new WeakMap<TableState, readonly FlowRow[]>();

/** The live table's pending flows, nearest deadline first (then oldest), memoised per state. */
export function pendingRows(state: TableState): readonly FlowRow[] {
  if (state.tally.pending === 0) return [];
  let rows = pendingOf.get(state);
  if (!rows) {
    const found: FlowRow[] = [];
    for (const row of state.flows.values()) if (flowPhase(row) === 'pending') found.push(row);
    found.sort((a, b) => deadlineOf(a) - deadlineOf(b) || a.flow.time - b.flow.time || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    rows = found;
    pendingOf.set(state, rows);
  }
  return rows;
}

function deadlineOf(row: FlowRow): number {
  return row.flow.pending?.deadline ?? Number.POSITIVE_INFINITY;
}

export interface PinnedRows {
  rows: readonly FlowRow[];
  /** The first `pinned` rows are the pending flows. */
  pinned: number;
}

/** The flows view's rows with the pending flows first. Memoised on its inputs. */
export class PendingPin {
  private memo?: { shown: readonly FlowRow[]; live: TableState; frozen: boolean; out: PinnedRows };

  /** `shown`: the view's rows (sorted, filtered; from a frozen table while frozen). `live`: the table
   *  as it is now. While frozen, a row that has been decided since is shown as it is now, so a key
   *  never acts on a verdict the screen no longer tells the truth about. */
  pin(shown: readonly FlowRow[], live: TableState, frozen: boolean): PinnedRows {
    const m = this.memo;
    if (m && m.shown === shown && m.live === live && m.frozen === frozen) return m.out;
    const pending = pendingRows(live);
    let out: PinnedRows;
    if (pending.length === 0 && !frozen) out = { rows: shown, pinned: 0 };
    else {
      const keys = new Set(pending.map((r) => r.key));
      const rest: FlowRow[] = [];
      for (const row of shown) {
        if (keys.has(row.key)) continue;
        rest.push(frozen && flowPhase(row) === 'pending' ? (live.flows.get(row.key) ?? row) : row);
      }
      out = { rows: pending.length === 0 ? rest : [...pending, ...rest], pinned: pending.length };
    }
    this.memo = { shown, live, frozen, out };
    return out;
  }
}

export interface StickyWindow {
  /** Index of the first scrolling row shown (at or after the pinned rows). */
  top: number;
  cursor: number;
  /** Pinned rows drawn above the scrolling ones. */
  sticky: number;
}

/** The visible window when the first `pinned` rows stay on screen: they take up to all but two
 *  lines of `height` (beyond that they scroll like the rest), and the other rows scroll below them.
 *  On a very short table the selected row comes first: pinned rows never push it out of view. */
export function stickyWindow(total: number, cursor: number, height: number, previousTop: number, pinned: number): StickyWindow {
  if (total <= 0 || height <= 0) return { top: 0, cursor: 0, sticky: 0 };
  const c = Math.min(Math.max(cursor, 0), total - 1);
  const cap = height >= 3 ? height - 2 : c < pinned ? 0 : height - 1;
  const sticky = Math.max(Math.min(pinned, total, cap), 0);
  const room = height - sticky;
  let top = Math.min(Math.max(previousTop, sticky), Math.max(total - room, sticky));
  if (c >= sticky) {
    if (c < top) top = c;
    if (c >= top + room) top = c - room + 1;
  }
  return { top, cursor: c, sticky };
}

/** The index after `cursor` of the next pinned (pending) row, wrapping; undefined when none. */
export function nextPinned(cursor: number, pinned: number): number | undefined {
  if (pinned === 0) return undefined;
  return cursor >= 0 && cursor < pinned - 1 ? cursor + 1 : 0;
}
