// The history view (key 4): programs or hosts ranked by traffic over a window (1 h, 24 h, 7 d,
// 30 d), each with a sparkline of its traffic across the window, the programs first seen or changed
// in it marked, and a program's hosts on Enter. It draws plain data; loading happens elsewhere
// (app/history-source.ts), so a slow query never holds a frame.
import { Box, Text } from 'ink';
import type { HistoryEntry, HistoryPage } from '../history/view-page.js';
import { HISTORY_WINDOWS, windowOf } from '../history/view-page.js';
import type { HistoryUnavailable } from '../app/history-source.js';
import { cursorOf, type HistoryViewState } from '../state/history-view.js';
import { glyphs } from './badges.js';
import { layout, type Column, type PlacedColumn } from './columns.js';
import { age, bytes, clean, displayWidth, pad, truncate } from './format.js';
import { Line } from './Line.js';
import { sparkline } from './sparkline.js';

/** What the view has to show: the newest page (possibly of an earlier query while the next loads). */
export interface HistoryLoad {
  page?: HistoryPage;
  loading: boolean;
  unavailable?: HistoryUnavailable;
}

export interface HistoryViewProps {
  width: number;
  /** Lines the view may use. */
  height: number;
  ascii: boolean;
  now: number;
  state: HistoryViewState;
  load: HistoryLoad;
  /** The file shown (absent: none). */
  path?: string;
  /** The cursor and first entry on screen as the app keeps them in view (default: the state's). */
  window?: { index: number; top: number };
}

/** Lines above the entries: the title and the column header. */
export const HISTORY_HEAD_LINES = 2;

interface Ctx {
  now: number;
  ascii: boolean;
  sparkWidth: number;
}

type EntryColumn = Column<HistoryEntry> & { cellOf?: (e: HistoryEntry, c: Ctx) => string };

const MARK_WORD = { new: 'new', changed: 'CHANGED' } as const;

function columnsFor(kind: 'process' | 'host'): EntryColumn[] {
  return [
    { id: 'name', title: kind === 'process' ? 'PROGRAM' : 'HOST', width: 14, grow: 2, priority: 100, cell: (e) => clean(e.label) },
    ...(kind === 'process' ? [{ id: 'mark', title: 'SEEN', width: 7, priority: 85, cell: (e: HistoryEntry) => (e.mark ? MARK_WORD[e.mark] : '') }] : []),
    { id: 'traffic', title: 'TRAFFIC', width: 12, grow: 4, priority: 95, cell: () => '' },
    { id: 'bytes', title: 'BYTES', width: 6, align: 'right', priority: 90, cell: (e) => bytes(e.rx + e.tx) },
    { id: 'rx', title: 'RX', width: 6, align: 'right', priority: 40, cell: (e) => bytes(e.rx) },
    { id: 'tx', title: 'TX', width: 6, align: 'right', priority: 40, cell: (e) => bytes(e.tx) },
    { id: 'conns', title: 'CONNS', width: 6, align: 'right', priority: 80, cell: (e) => String(e.flows) },
    ...(kind === 'process' ? [{ id: 'first', title: 'FIRST SEEN', width: 10, align: 'right' as const, priority: 50, cell: () => '' }] : []),
  ];
}

/** The columns at this width; the sparkline's width is how many steps to ask the history for. */
export function historyColumns(width: number, kind: 'process' | 'host'): PlacedColumn<HistoryEntry>[] {
  return layout(columnsFor(kind), Math.max(width - 2, 10));
}

/** Steps to ask for: one per character of the sparkline at this width. */
export function historyPoints(width: number, state: HistoryViewState): number {
  const kind = state.drill ? 'host' : state.by;
  return historyColumns(width, kind).find((c) => c.id === 'traffic')?.size ?? 12;
}

function cell(c: PlacedColumn<HistoryEntry>, e: HistoryEntry, ctx: Ctx): string {
  if (c.id === 'traffic') return sparkline(e.traffic, c.size, { ascii: ctx.ascii });
  if (c.id === 'first') return e.firstSeen !== undefined ? `${age(ctx.now - e.firstSeen)} ago` : '-';
  return c.cell(e, ctx);
}

/** "24m" for a step of 24 minutes: how much time one mark of a sparkline covers. */
export function stepLabel(stepMs: number): string {
  const m = Math.round(stepMs / 60_000);
  if (m < 60) return `${m} min`;
  if (m % 60 === 0 && m < 48 * 60) return `${m / 60} h`;
  return age(stepMs);
}

export function HistoryView(p: HistoryViewProps) {
  const { state, load, ascii, width } = p;
  const g = glyphs(ascii);
  const window = windowOf(state.window);
  const kind = state.drill ? 'host' : state.by;
  const title = state.drill
    ? `Hosts ${clean(state.drill.label)} talked to${g.sep}last ${window.label}`
    : `${state.by === 'process' ? 'Programs' : 'Hosts'} by traffic${g.sep}last ${window.label}`;
  const page = load.page;
  const shown = shownPage(load, state);
  const stale = load.loading || (page !== undefined && shown === undefined) || (shown !== undefined && shown.query.window !== state.window);
  const step = shown ? `${g.sep}one mark = ${stepLabel(shown.stepMs)}` : '';
  const status = stale ? `${g.sep}reading${ascii ? '...' : '…'}` : '';
  const partial = shown?.partialSince !== undefined ? `${g.sep}its newest connections only: the last ${age(p.now - shown.partialSince)}` : '';
  // Cut here, not by Ink: its cut mark is not ASCII.
  const aside = truncate(`${partial}${step}${status}${p.path ? `${g.sep}${clean(p.path)}` : ''}`, Math.max(width - displayWidth(title), 0), ascii).trimEnd();
  const head = (
    <Text wrap="truncate">
      <Text bold>{truncate(title, width, ascii)}</Text>
      <Text dimColor>{aside}</Text>
    </Text>
  );
  if (load.unavailable && !shown) {
    return (
      <>
        {head}
        <Text color="yellow" wrap="truncate">No history to show: {clean(load.unavailable.reason)}</Text>
        {load.unavailable.hint ? <Text dimColor wrap="truncate">{clean(load.unavailable.hint)}</Text> : null}
      </>
    );
  }
  if (!shown) {
    return (
      <>
        {head}
        <Text dimColor>reading the history{ascii ? '...' : '…'}</Text>
      </>
    );
  }
  const columns = historyColumns(width, kind);
  const ctx: Ctx = { now: p.now, ascii, sparkWidth: columns.find((c) => c.id === 'traffic')?.size ?? 12 };
  const header = columns.map((c) => pad(c.id === 'bytes' ? `${c.title}${g.sortDown}` : c.title, c.size, c.align, ascii)).join(' ');
  const rows = historyRows(p.height);
  const cursor = { ...cursorOf(state), ...(p.window ?? {}) };
  const top = Math.min(cursor.top, Math.max(shown.entries.length - rows, 0));
  const visible = shown.entries.slice(top, top + rows);
  const lineWidth = displayWidth(header) + 2;
  return (
    <>
      {head}
      <Text bold wrap="truncate">{`  ${header}`}</Text>
      {shown.entries.length === 0 ? (
        <Text dimColor wrap="truncate">
          {state.drill?.identity === ''
            ? 'none left without an owner: their program was found after their traffic was counted (its lookup took longer than the recorder waits), and they are listed under it'
            : state.drill ? `no connections of ${clean(state.drill.label)} in the last ${window.label}` : `nothing recorded in the last ${window.label}`}
          {state.window !== '30d' ? ' (w widens the window)' : ''}
        </Text>
      ) : null}
      {visible.map((e, i) => {
        const selected = top + i === cursor.index;
        return (
          <Box key={i}>
            <Line width={lineWidth}>
              <Text inverse={selected}>
                {selected ? `${g.cursor} ` : '  '}
                {columns.map((c, at) => (
                  <Text key={c.id} {...cellLook(c.id, e)}>
                    {(at > 0 ? ' ' : '') + pad(cell(c, e, ctx), c.size, c.align, ascii)}
                  </Text>
                ))}
              </Text>
            </Line>
          </Box>
        );
      })}
    </>
  );
}

/** The loaded page when it is of what the state shows (programs, hosts, or this program's hosts;
 *  the window may still be the previous one while the next loads). */
export function shownPage(load: HistoryLoad, state: HistoryViewState): HistoryPage | undefined {
  const page = load.page;
  const kind = state.drill ? 'host' : state.by;
  return page && page.query.by === kind && page.query.identity === state.drill?.identity ? page : undefined;
}

/** Entry lines the view has room for when it may use `height` lines. */
export function historyRows(height: number): number {
  return Math.max(height - HISTORY_HEAD_LINES, 1);
}

/** Colour only adds to what the text says: the sparkline is cyan, a changed binary red, a new one yellow. */
function cellLook(id: string, e: HistoryEntry): { color?: string; bold?: boolean } {
  if (id === 'traffic') return { color: 'cyan' };
  if (id === 'mark' && e.mark === 'changed') return { color: 'red', bold: true };
  if (id === 'mark' && e.mark === 'new') return { color: 'yellow' };
  return {};
}

/** The footer's key hints in the history view. */
export function historyHints(state: HistoryViewState): string[] {
  return [
    `w ${HISTORY_WINDOWS.map((w) => (w.id === state.window ? `[${w.id}]` : w.id)).join(' ')}`,
    state.drill ? 'h all hosts' : state.by === 'process' ? 'h hosts' : 'h programs',
    ...(state.drill ? ['Esc back'] : state.by === 'process' ? ['Enter its hosts'] : []),
    '? help',
    'q quit',
  ];
}
