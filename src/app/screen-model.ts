// Everything a frame shows, derived from the UI state and the live table: the rows of the view
// (pending flows pinned on top), where the cursor is, which window of rows is on screen, the
// details pane and how the height is shared. Pure apart from its caches: render draws what it
// returns, and a key is carried out against what it returns for the state the key found.
import { countFlows, type Counts } from '../state/derive.js';
import { FlowFilter } from '../state/filter.js';
import { PendingPin, stickyWindow } from '../state/pending.js';
import type { FlowRow, TableState } from '../state/types.js';
import type { UiState } from '../state/ui.js';
import { FlowsSelector, selectProcesses, selectRules, visibleWindow, type ProcessRow, type RuleRow } from '../state/views.js';
import type { DetailLine } from '../ui/Details.js';
import { footerLines, screenLayout, selectedDetails } from '../ui/Screen.js';

export interface Viewport {
  rows: number;
  columns: number;
}

export interface ScreenModel {
  /** The table shown: the frozen copy while frozen, else the live one. */
  table: TableState;
  counts: Counts;
  /** Flows view rows; the first `pinned` are the live table's pending flows. */
  flows: readonly FlowRow[];
  pinned: number;
  processes: readonly ProcessRow[];
  rules: readonly RuleRow[];
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

/** Derives screen models, keeping the selectors' caches between frames (one per app). */
export class ScreenModeler {
  private readonly flowsSelector = new FlowsSelector();
  private readonly pendingPin = new PendingPin();
  private readonly processFilter = new FlowFilter();
  private processMemo?: { table: TableState; rev: number; key: string; rows: readonly ProcessRow[] };
  private countsMemo?: { table: TableState; live: TableState; rev: number; liveRev: number; counts: Counts };

  model(ui: UiState, live: TableState, viewport: Viewport, bannerLines: number): ScreenModel {
    const table = ui.frozen ?? live;
    const pinnedFlows = this.pendingPin.pin(this.flowsSelector.select(table, { sort: ui.flowSort, filter: ui.filter }), live, ui.frozen !== undefined);
    const flows = pinnedFlows.rows;
    const processes = ui.view === 'processes' ? this.processes(table, ui) : NO_PROCESSES;
    const rules = selectRules(table);
    const rows: ReadonlyArray<{ key: string }> = ui.view === 'flows' ? flows : ui.view === 'processes' ? processes : rules;

    // The selection follows its row when the order changes; if the row left, the index stays.
    let cursor = Math.min(ui.cursor[ui.view], Math.max(rows.length - 1, 0));
    const selectedKey = ui.selected[ui.view];
    if (selectedKey && rows[cursor]?.key !== selectedKey) {
      const at = rows.findIndex((r) => r.key === selectedKey);
      if (at >= 0) cursor = at;
    }
    const height = Math.max(viewport.rows - 1, 5);
    const details = ui.details && !ui.help ? selectedDetails(ui.view, flows[cursor], processes[cursor], rules[cursor]) : undefined;
    const { tableRows, detailRows } = screenLayout(height, table.sources.size + bannerLines, details?.lines.length, footerLines(ui));
    const win =
      ui.view === 'flows'
        ? stickyWindow(rows.length, cursor, tableRows, ui.top.flows, pinnedFlows.pinned)
        : { ...visibleWindow(rows.length, cursor, tableRows, ui.top[ui.view]), sticky: 0 };
    return {
      table,
      counts: this.counts(table, live),
      flows,
      pinned: pinnedFlows.pinned,
      processes,
      rules,
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
