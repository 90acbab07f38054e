// Everything a frame shows, derived from the UI state and the live table: the rows of the view
// (pending flows pinned on top), where the cursor is, which window of rows is on screen, the
// details pane and how the height is shared. Pure apart from its caches: render draws what it
// returns, and a key is carried out against what it returns for the state the key found.
import { countFlows, hintedUserNames, type Counts, type HintedUser } from '../state/derive.js';
import { FlowFilter } from '../state/filter.js';
import { PendingPin, stickyWindow } from '../state/pending.js';
import type { FlowRow, TableState } from '../state/types.js';
import type { UiState } from '../state/ui.js';
import { FlowsSelector, selectProcesses, selectRules, visibleWindow, type ProcessRow, type RuleRow } from '../state/views.js';
import type { DetailLine } from '../ui/Details.js';
import { footerLines, screenLayout, selectedDetails } from '../ui/Screen.js';
import { historyRows, shownPage, type HistoryLoad } from '../ui/HistoryView.js';
import type { HistoryEntry } from '../history/view-page.js';
import { cursorOf } from '../state/history-view.js';
import { headerSourceLines } from '../state/hosts.js';

export interface Viewport {
  rows: number;
  columns: number;
}

export interface ScreenModel {
  /** The table shown: the frozen copy while frozen, else the live one. */
  table: TableState;
  /** The local name of a flow's uid as its extension sent it, for the USER column and the details. */
  hintedUser: HintedUser;
  counts: Counts;
  /** Flows view rows; the first `pinned` are the live table's pending flows. */
  flows: readonly FlowRow[];
  pinned: number;
  processes: readonly ProcessRow[];
  rules: readonly RuleRow[];
  /** The history view's entries (of the page loaded for what it shows). */
  history?: readonly HistoryEntry[];
  /** The current view's rows. */
  rows: ReadonlyArray<{ key: string }>;
  cursor: number;
  /** First scrolling row on screen, and pinned rows drawn above it. */
  top: number;
  sticky: number;
  details?: { title: string; lines: DetailLine[] };
  /** Lines the frame may use (the terminal's rows - 1), and how they are shared. */
  height: number;
  tableRows: number;
  detailRows: number;
}

const NO_PROCESSES: readonly ProcessRow[] = [];
const NO_ENTRIES: readonly HistoryEntry[] = [];

/** Derives screen models, keeping the selectors' caches between frames (one per app). */
export class ScreenModeler {
  /** `recent`: a program's bytes per step over the last minutes, for the processes view's sparkline. */
  constructor(private readonly recent?: (key: string, now: number) => readonly number[]) {}

  private readonly flowsSelector = new FlowsSelector();
  private readonly pendingPin = new PendingPin();
  private readonly processFilter = new FlowFilter();
  private processMemo?: { table: TableState; rev: number; key: string; rows: readonly ProcessRow[] };
  private countsMemo?: { table: TableState; live: TableState; rev: number; liveRev: number; counts: Counts };

  model(ui: UiState, live: TableState, viewport: Viewport, bannerLines: number, history?: HistoryLoad): ScreenModel {
    const table = ui.frozen ?? live;
    const pinnedFlows = this.pendingPin.pin(this.flowsSelector.select(table, { sort: ui.flowSort, filter: ui.filter }), live, ui.frozen !== undefined);
    const flows = pinnedFlows.rows;
    const processes = ui.view === 'processes' ? this.withRecent(this.processes(table, ui), table.now) : NO_PROCESSES;
    const rules = selectRules(table);
    const entries = ui.view === 'history' && history ? (shownPage(history, ui.history)?.entries ?? NO_ENTRIES) : NO_ENTRIES;
    const rows: ReadonlyArray<{ key: string }> = ui.view === 'flows' ? flows : ui.view === 'processes' ? processes : ui.view === 'rules' ? rules : entries;

    // The selection follows its row when the order changes; if the row left, the index stays.
    const at = ui.view === 'history' ? cursorOf(ui.history) : { index: ui.cursor[ui.view], key: ui.selected[ui.view], top: ui.top[ui.view] };
    let cursor = Math.min(at.index, Math.max(rows.length - 1, 0));
    const selectedKey = at.key;
    if (selectedKey && rows[cursor]?.key !== selectedKey) {
      const at = rows.findIndex((r) => r.key === selectedKey);
      if (at >= 0) cursor = at;
    }
    const height = Math.max(viewport.rows - 1, 5);
    const hintedUser = hintedUserNames(table);
    const details = ui.details && !ui.help && ui.view !== 'history' ? selectedDetails(ui.view, flows[cursor], processes[cursor], rules[cursor], hintedUser) : undefined;
    const layout = screenLayout(height, headerSourceLines(table.sources.values()) + bannerLines, details?.lines.length, footerLines(ui));
    const { detailRows } = layout;
    // The history view draws a title above its column header: one row fewer.
    const tableRows = ui.view === 'history' ? historyRows(layout.tableRows + 1) : layout.tableRows;
    const win =
      ui.view === 'flows'
        ? stickyWindow(rows.length, cursor, tableRows, ui.top.flows, pinnedFlows.pinned)
        : { ...visibleWindow(rows.length, cursor, tableRows, at.top), sticky: 0 };
    return {
      table,
      hintedUser,
      counts: this.counts(table, live),
      flows,
      pinned: pinnedFlows.pinned,
      processes,
      rules,
      ...(ui.view === 'history' ? { history: entries } : {}),
      rows,
      cursor: win.cursor,
      top: win.top,
      sticky: win.sticky,
      details,
      height,
      tableRows,
      detailRows,
    };
  }

  private processes(table: TableState, ui: UiState): readonly ProcessRow[] {
    const key = JSON.stringify([ui.processSort, ui.filter]);
    const m = this.processMemo;
    if (m && m.table === table && m.rev === table.rev && m.key === key) return m.rows;
    const rows = selectProcesses(table, { sort: ui.processSort, filter: ui.filter }, this.processFilter);
    this.processMemo = { table, rev: table.rev, key, rows };
    return rows;
  }

  /** The processes with their traffic over the last minutes (it moves on with time, not with the table). */
  private withRecent(rows: readonly ProcessRow[], now: number): readonly ProcessRow[] {
    const recent = this.recent;
    return recent ? rows.map((p) => ({ ...p, recent: recent(p.key, now) })) : rows;
  }

  /** Frozen, the counts are the copy's, but flows waiting for a verdict are counted live: they still
   *  need an answer. */
  private counts(table: TableState, live: TableState): Counts {
    const m = this.countsMemo;
    if (m && m.table === table && m.live === live && m.rev === table.rev && m.liveRev === live.rev) return m.counts;
    const counts = table === live ? countFlows(live) : { ...countFlows(table), pending: live.tally.pending };
    this.countsMemo = { table, live, rev: table.rev, liveRev: live.rev, counts };
    return counts;
  }
}
