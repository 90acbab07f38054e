// What the person is looking at: view, cursor, scroll position, sort, filter, overlays, the frozen
// copy of the table. A pure reducer: the key map (src/ui/keys.ts) turns key presses into intents,
// and src/app/intents.ts turns each intent into these actions.
import type { Action, RememberScope } from '../protocol/messages.js';
import type { PromptDuration } from '../app/prompt.js';
import type { FilterSpec } from './filter.js';
import { ERASE_CHAR, editLine } from './line-edit.js';
import { FLOW_SORT_COLUMNS, nextColumn, type FlowSortColumn, type SortSpec } from './sort.js';
import { PROCESS_SORT_COLUMNS, type ProcessSortColumn } from './views.js';
import type { TableState } from './types.js';
import { initialHistoryView, reduceHistoryView, type HistoryViewAction, type HistoryViewState } from './history-view.js';

export const VIEWS = ['flows', 'processes', 'rules', 'history'] as const;
export type ViewName = (typeof VIEWS)[number];

export type Confirm =
  /** `A` / `B`: the decision prompt, fixed to the flow it opened on (`rowKey`); the person picks
   *  how long and what it covers. `label` names the flow as it was when the prompt opened. */
  | { kind: 'rule'; action: Action; rowKey: string; scope: RememberScope; duration: PromptDuration; waiting: boolean; label: string }
  /** `d` / `Del` in the rules view. */
  | { kind: 'delete-rule'; ruleKey: string; label: string };

export interface StatusNote {
  text: string;
  tone: 'info' | 'error';
  time: number;
}

export interface UiState {
  view: ViewName;
  cursor: Record<ViewName, number>;
  /** The selected row's key, so the selection follows its row when the order changes. */
  selected: Partial<Record<ViewName, string>>;
  /** Each view's first scrolling row on screen, as the last key left it (render keeps the cursor in
   *  view from here without writing it back). */
  top: Record<ViewName, number>;
  flowSort: SortSpec<FlowSortColumn>;
  processSort: SortSpec<ProcessSortColumn>;
  filter: FilterSpec;
  /** True while typing after `/`; the filter applies live. */
  editingFilter: boolean;
  details: boolean;
  /** First line of the details pane shown, when its lines do not all fit. */
  detailScroll: number;
  help: boolean;
  /** Space: the copy of the table shown until resume (state/freeze.ts); undefined while live. */
  frozen?: TableState;
  /** The bell rings for new pending flows (m toggles it). */
  bell: boolean;
  confirm?: Confirm;
  status?: StatusNote;
  /** The history view (4): its window, programs or hosts, drill-down and cursor (history-view.ts). */
  history: HistoryViewState;
}

export type UiAction =
  | { type: 'select'; index: number; key?: string }
  | { type: 'scrolled'; top: number }
  | { type: 'view'; view: ViewName }
  | { type: 'cycle-view'; step: 1 | -1 }
  /** `hosts`: the flows view shows HOST (flows from more than one machine), so it can be sorted by. */
  | { type: 'sort-next'; step: 1 | -1; hosts?: boolean }
  | { type: 'sort-reverse' }
  | { type: 'filter-start' }
  | { type: 'filter-type'; text: string }
  | { type: 'filter-erase' }
  | { type: 'filter-keep' }
  | { type: 'filter-clear' }
  | { type: 'toggle-insecure' }
  | { type: 'details'; open: boolean }
  | { type: 'detail-scroll'; step: number }
  | { type: 'help'; open: boolean }
  | { type: 'freeze'; table: TableState }
  | { type: 'resume' }
  | { type: 'bell'; on: boolean }
  | { type: 'confirm'; confirm: Confirm | undefined }
  | { type: 'confirm-scope'; scope: RememberScope }
  | { type: 'confirm-duration'; duration: PromptDuration }
  | { type: 'status'; note: StatusNote | undefined }
  | { type: 'history'; action: HistoryViewAction };

export function initialUi(options: { bell?: boolean } = {}): UiState {
  return {
    view: 'flows',
    cursor: { flows: 0, processes: 0, rules: 0, history: 0 },
    selected: {},
    top: { flows: 0, processes: 0, rules: 0, history: 0 },
    flowSort: { column: 'age', reverse: false },
    processSort: { column: 'rate', reverse: false },
    filter: { query: '', onlyInsecure: false },
    editingFilter: false,
    details: false,
    detailScroll: 0,
    help: false,
    bell: options.bell ?? true,
    history: initialHistoryView(),
  };
}

/** Whether two prompts are the same prompt (whatever was chosen in it): the same flow and action,
 *  or the same rule to delete. */
export const samePrompt = (a: Confirm | undefined, b: Confirm | undefined): boolean =>
  !!a && !!b && a.kind === b.kind && (a.kind === 'rule' ? b.kind === 'rule' && a.rowKey === b.rowKey && a.action === b.action : b.kind === 'delete-rule' && a.ruleKey === b.ruleKey);

export function reduceUi(s: UiState, a: UiAction): UiState {
  // The history view keeps its own cursor (one for the ranking, one for a program's hosts).
  if (s.view === 'history' && (a.type === 'select' || a.type === 'scrolled')) return { ...s, history: reduceHistoryView(s.history, a) };
  switch (a.type) {
    case 'history':
      return { ...s, history: reduceHistoryView(s.history, a.action) };
    case 'select':
      return { ...s, cursor: { ...s.cursor, [s.view]: Math.max(a.index, 0) }, selected: { ...s.selected, [s.view]: a.key }, detailScroll: 0 };
    case 'scrolled':
      return s.top[s.view] === a.top ? s : { ...s, top: { ...s.top, [s.view]: Math.max(a.top, 0) } };
    case 'view':
      return { ...s, view: a.view, details: false };
    case 'cycle-view': {
      const at = VIEWS.indexOf(s.view);
      return { ...s, view: VIEWS[(at + a.step + VIEWS.length) % VIEWS.length]!, details: false };
    }
    case 'sort-next':
      if (s.view === 'flows') return { ...s, flowSort: { ...s.flowSort, column: nextColumn(a.hosts ? FLOW_SORT_COLUMNS : FLOW_SORT_COLUMNS.filter((c) => c !== 'host'), s.flowSort.column, a.step) } };
      if (s.view === 'processes') return { ...s, processSort: { ...s.processSort, column: nextColumn(PROCESS_SORT_COLUMNS, s.processSort.column, a.step) } };
      return s;
    case 'sort-reverse':
      if (s.view === 'flows') return { ...s, flowSort: { ...s.flowSort, reverse: !s.flowSort.reverse } };
      if (s.view === 'processes') return { ...s, processSort: { ...s.processSort, reverse: !s.processSort.reverse } };
      return s;
    case 'filter-start':
      return { ...s, editingFilter: true };
    case 'filter-type':
      // The text may hold editing keys that arrived in the same read (see line-edit.ts).
      return { ...s, filter: { ...s.filter, query: editLine(s.filter.query, a.text) } };
    case 'filter-erase':
      return { ...s, filter: { ...s.filter, query: editLine(s.filter.query, ERASE_CHAR) } };
    case 'filter-keep':
      return { ...s, editingFilter: false };
    case 'filter-clear':
      return { ...s, editingFilter: false, filter: { ...s.filter, query: '' } };
    case 'toggle-insecure':
      return { ...s, filter: { ...s.filter, onlyInsecure: !s.filter.onlyInsecure } };
    case 'details':
      return { ...s, details: a.open, detailScroll: 0 };
    case 'detail-scroll':
      return { ...s, detailScroll: Math.max(s.detailScroll + a.step, 0) };
    case 'help':
      return { ...s, help: a.open };
    case 'freeze':
      return { ...s, frozen: a.table };
    case 'resume':
      return { ...s, frozen: undefined };
    case 'bell':
      return { ...s, bell: a.on };
    case 'confirm': {
      // A prompt that opens starts without the last note: the prompt shows error notes in its title,
      // and one from before it (a flow the default blocked) is not about it.
      const opens = a.confirm !== undefined && !samePrompt(s.confirm, a.confirm);
      return opens ? { ...s, confirm: a.confirm, status: undefined } : { ...s, confirm: a.confirm };
    }
    case 'confirm-scope':
      return s.confirm?.kind === 'rule' ? { ...s, confirm: { ...s.confirm, scope: a.scope } } : s;
    case 'confirm-duration':
      return s.confirm?.kind === 'rule' ? { ...s, confirm: { ...s.confirm, duration: a.duration } } : s;
    case 'status':
      return { ...s, status: a.note };
  }
}
