// What the history view is showing: the time window, programs or hosts, the program drilled into
// (its hosts), and the cursor. A pure reducer; the data itself is loaded elsewhere (history-source).
import { HISTORY_WINDOWS, type HistoryWindowId, type PageQuery } from '../history/view-page.js';

export interface HistoryCursor {
  /** Index of the selected entry, and the key it had (the selection follows its entry on reload). */
  index: number;
  key?: string;
  top: number;
}

export interface HistoryViewState {
  window: HistoryWindowId;
  by: 'process' | 'host';
  cursor: HistoryCursor;
  /** Enter on a program: the hosts it talked to; Escape returns with the cursor where it was. */
  drill?: { identity: string; label: string; cursor: HistoryCursor; parent: HistoryCursor };
}

export type HistoryViewAction =
  | { type: 'window-next' }
  | { type: 'toggle-by' }
  | { type: 'select'; index: number; key?: string }
  | { type: 'scrolled'; top: number }
  | { type: 'drill'; identity: string; label: string }
  | { type: 'back' };

export function initialHistoryView(): HistoryViewState {
  return { window: '24h', by: 'process', cursor: { index: 0, top: 0 } };
}

export function reduceHistoryView(s: HistoryViewState, a: HistoryViewAction): HistoryViewState {
  switch (a.type) {
    case 'window-next': {
      const at = HISTORY_WINDOWS.findIndex((w) => w.id === s.window);
      return { ...s, window: HISTORY_WINDOWS[(at + 1) % HISTORY_WINDOWS.length]!.id };
    }
    case 'toggle-by':
      // From a program's hosts, `h` goes to all hosts.
      return { ...s, by: s.drill ? 'host' : s.by === 'process' ? 'host' : 'process', cursor: { index: 0, top: 0 }, drill: undefined };
    case 'select':
      return withCursor(s, { ...cursorOf(s), index: Math.max(a.index, 0), key: a.key });
    case 'scrolled':
      return cursorOf(s).top === a.top ? s : withCursor(s, { ...cursorOf(s), top: a.top });
    case 'drill':
      if (s.drill || s.by !== 'process') return s;
      return { ...s, drill: { identity: a.identity, label: a.label, cursor: { index: 0, top: 0 }, parent: s.cursor } };
    case 'back':
      return s.drill ? { ...s, cursor: s.drill.parent, drill: undefined } : s;
  }
}

export function cursorOf(s: HistoryViewState): HistoryCursor {
  return s.drill ? s.drill.cursor : s.cursor;
}

function withCursor(s: HistoryViewState, c: HistoryCursor): HistoryViewState {
  return s.drill ? { ...s, drill: { ...s.drill, cursor: c } } : { ...s, cursor: c };
}

/** The page the state asks for, given the sparkline's width. */
export function pageQueryOf(s: HistoryViewState, points: number): PageQuery {
  return { window: s.window, by: s.drill ? 'host' : s.by, ...(s.drill ? { identity: s.drill.identity } : {}), points };
}

export function samePageQuery(a: PageQuery, b: PageQuery): boolean {
  return a.window === b.window && a.by === b.by && a.identity === b.identity && a.points === b.points;
}
