// Intent → what it does: UI actions for the reducer (state/ui.ts) and effects for the app to carry
// out (a message to a flow's own source, quitting). A pure table: each entry reads the UI state and
// the screen model the key found, and the live table; nothing here sends or draws.
import type { ClientMessage } from '../protocol/messages.js';
import { flowPhase } from '../state/derive.js';
import { freezeTable } from '../state/freeze.js';
import { nextPinned } from '../state/pending.js';
import { showsHosts } from '../state/hosts.js';
import type { TableState } from '../state/types.js';
import type { StatusNote, UiAction, UiState } from '../state/ui.js';
import { ruleIdentityLabel } from '../ui/columns.js';
import type { Intent } from '../ui/keys.js';
import { cannotAct, decideDeleteRule, decideOnce, decideProcessOnce, pendingFlowsOf, type Decision } from './decide.js';
import { promptClosedNote } from './pending-watch.js';
import { PROMPT_DURATIONS, PROMPT_SCOPES, decideWithPrompt, flowLabel, initialDuration, promptOptions } from './prompt.js';
import type { ScreenModel } from './screen-model.js';

export type Effect =
  /** Send each message to its source; on success say `note`, else why not (and stop). */
  | { kind: 'send'; sends: ReadonlyArray<{ source: string; message: ClientMessage }>; note: string }
  | { kind: 'quit' };

export interface Outcome {
  actions: UiAction[];
  effects?: Effect[];
}

export interface IntentContext {
  ui: UiState;
  model: ScreenModel;
  /** The table as it is now (a frozen copy may be out of date: keys act on the live rows). */
  live: TableState;
  now: number;
}

type Handlers = { [K in Intent['kind']]: (intent: Extract<Intent, { kind: K }>, c: IntentContext) => Outcome };

const act = (...actions: UiAction[]): Outcome => ({ actions });
const NOTHING: Outcome = { actions: [] };

export function note(text: string, tone: StatusNote['tone'], now: number): UiAction {
  return { type: 'status', note: { text, tone, time: now } };
}
const say = (c: IntentContext, text: string, tone: StatusNote['tone'] = 'info'): Outcome => act(note(text, tone, c.now));

function carryOut(c: IntentContext, source: string, decision: Decision): Outcome {
  if ('refuse' in decision) return say(c, decision.refuse, 'error');
  return { actions: [], effects: [{ kind: 'send', sends: [{ source, message: decision.send }], note: decision.note }] };
}

function select(c: IntentContext, index: number): UiAction {
  const rows = c.model.rows;
  const i = Math.min(Math.max(index, 0), Math.max(rows.length - 1, 0));
  return { type: 'select', index: i, key: rows[i]?.key };
}

const HANDLERS: Handlers = {
  move(intent, c) {
    const { cursor, rows, top, tableRows } = c.model;
    const page = Math.max(tableRows - 1, 1);
    const to = { up: cursor - 1, down: cursor + 1, 'page-up': cursor - page, 'page-down': cursor + page, home: 0, end: rows.length - 1 }[intent.to];
    // Paging scrolls the view with the cursor, as in less.
    if (intent.to === 'page-down') return act({ type: 'scrolled', top: top + page }, select(c, to));
    if (intent.to === 'page-up') return act({ type: 'scrolled', top: Math.max(top - page, 0) }, select(c, to));
    return act(select(c, to));
  },
  view: (i) => act({ type: 'view', view: i.view }),
  'cycle-view': (i) => act({ type: 'cycle-view', step: i.step }),
  'sort-next': (i, c) => act({ type: 'sort-next', step: i.step, hosts: showsHosts(c.live.sources.values()) }),
  'sort-reverse': () => act({ type: 'sort-reverse' }),
  'filter-start': () => act({ type: 'filter-start' }),
  'filter-type': (i) => act({ type: 'filter-type', text: i.text }),
  'filter-erase': () => act({ type: 'filter-erase' }),
  'filter-keep': () => act({ type: 'filter-keep' }),
  'filter-clear': () => act({ type: 'filter-clear' }),
  'toggle-insecure': () => act({ type: 'toggle-insecure' }),
  details(_, c) {
    if (c.ui.view !== 'history') return act({ type: 'details', open: !c.ui.details });
    // The history view: Enter on a program shows the hosts it talked to.
    const h = c.ui.history;
    if (h.drill) return NOTHING;
    if (h.by !== 'process') return say(c, 'Enter shows the hosts of a program: h lists programs', 'error');
    const entry = c.model.history?.[c.model.cursor];
    if (!entry) return say(c, 'no program selected', 'error');
    return act({ type: 'history', action: { type: 'drill', identity: entry.key, label: entry.label } });
  },
  'history-window': (_, c) => (c.ui.view === 'history' ? act({ type: 'history', action: { type: 'window-next' } }) : say(c, 'w changes the time window of the history view: press 4', 'error')),
  'history-by': (_, c) => (c.ui.view === 'history' ? act({ type: 'history', action: { type: 'toggle-by' } }) : say(c, 'h switches the history view between programs and hosts: press 4', 'error')),
  'detail-scroll'(intent, c) {
    const { details, detailRows } = c.model;
    if (!details) return say(c, 'J/K scroll the details pane: open it with Enter', 'error');
    // No scrolling past the last line (else K would first have to climb back).
    if (intent.step > 0 && c.ui.detailScroll >= details.lines.length - (detailRows - 1)) return NOTHING;
    return act({ type: 'detail-scroll', step: intent.step });
  },
  escape(_, c) {
    if (c.ui.confirm) return act({ type: 'confirm', confirm: undefined });
    if (c.ui.view === 'history' && c.ui.history.drill) return act({ type: 'history', action: { type: 'back' } });
    if (c.ui.details) return act({ type: 'details', open: false });
    if (c.ui.filter.query) return act({ type: 'filter-clear' });
    return NOTHING;
  },
  help: (_, c) => act({ type: 'help', open: !c.ui.help }),
  // The copy is taken at the press, so what is on screen stops moving from that moment.
  freeze: (_, c) => act(c.ui.frozen ? { type: 'resume' } : { type: 'freeze', table: freezeTable(c.live, c.now) }),
  quit: () => ({ actions: [], effects: [{ kind: 'quit' }] }),
  'next-pending'(_, c) {
    // Pending flows are the pinned rows, whatever the filter: n walks them from any view.
    const { flows, pinned, cursor } = c.model;
    const at = nextPinned(c.ui.view === 'flows' ? cursor : -1, pinned);
    if (at === undefined) return say(c, 'no flow is waiting for a verdict');
    const select: UiAction = { type: 'select', index: at, key: flows[at]?.key };
    return c.ui.view === 'flows' ? act(select) : act({ type: 'view', view: 'flows' }, select);
  },
  'toggle-bell': (_, c) =>
    act({ type: 'bell', on: !c.ui.bell }, note(c.ui.bell ? 'bell muted: new pending flows no longer ring (m turns it back on)' : 'bell on: each new pending flow rings', 'info', c.now)),
  'confirm-duration': (i) => act({ type: 'confirm-duration', duration: i.duration }),
  'confirm-scope': (i) => act({ type: 'confirm-scope', scope: i.scope }),
  'confirm-cycle'(intent, c) {
    const p = c.ui.confirm;
    if (p?.kind !== 'rule') return NOTHING;
    if (intent.axis === 'duration') {
      const at = PROMPT_DURATIONS.indexOf(p.duration);
      return act({ type: 'confirm-duration', duration: PROMPT_DURATIONS[(at + intent.step + PROMPT_DURATIONS.length) % PROMPT_DURATIONS.length]! });
    }
    const at = PROMPT_SCOPES.indexOf(p.scope as (typeof PROMPT_SCOPES)[number]);
    return act({ type: 'confirm-scope', scope: PROMPT_SCOPES[(at + intent.step + PROMPT_SCOPES.length) % PROMPT_SCOPES.length]! });
  },
  verdict(intent, c) {
    const { ui, model, live } = c;
    const table = model.table;
    if (ui.view === 'rules' || ui.view === 'history') return say(c, 'a/b/A/B act on a flow or a process: switch to the flows or processes view (1 or 2)', 'error');
    if (ui.view === 'processes' && !intent.always) {
      const p = model.processes[model.cursor];
      if (!p) return say(c, 'no process selected', 'error');
      const d = decideProcessOnce(p, pendingFlowsOf(table, p), (s) => table.sources.get(s), intent.action);
      if ('refuse' in d) return say(c, d.refuse, 'error');
      return { actions: [], effects: [{ kind: 'send', sends: d.sends.map((s) => ({ source: s.source, message: s.send })), note: d.note }] };
    }
    // A/B on a process: the rule is made from its newest flow (same identity). A row acts as it is
    // now in the live table (a frozen row may be out of date).
    const shown = ui.view === 'processes' ? model.processes[model.cursor]?.sample : model.flows[model.cursor];
    const row = shown ? (live.flows.get(shown.key) ?? shown) : undefined;
    if (!row) return say(c, ui.view === 'processes' ? 'no process selected' : 'no flow selected', 'error');
    const info = live.sources.get(row.source) ?? table.sources.get(row.source);
    if (!intent.always) return carryOut(c, row.source, decideOnce(row, info, intent.action));
    // Ask first, unless the extension cannot act at all (say so right away).
    const refused = cannotAct(info);
    if (refused) return say(c, refused, 'error');
    const options = promptOptions(row, info);
    const waiting = flowPhase(row) === 'pending';
    if (!waiting && options.durations.every((d) => d.unavailable)) return say(c, options.durations.find((d) => d.id === 'always')!.unavailable!, 'error');
    return act({
      type: 'confirm',
      confirm: { kind: 'rule', action: intent.action, rowKey: row.key, scope: 'process', duration: initialDuration(options), waiting, label: flowLabel(row) },
    });
  },
  'confirm-yes'(_, c) {
    const p = c.ui.confirm;
    if (!p) return NOTHING;
    const close: UiAction = { type: 'confirm', confirm: undefined };
    const closing = (o: Outcome): Outcome => ({ actions: [close, ...o.actions], effects: o.effects });
    if (p.kind === 'rule') {
      // The prompt's own flow, as it is now: never the row under the cursor.
      const row = c.live.flows.get(p.rowKey);
      if (!row) return closing(say(c, `${p.label} has left the table; nothing was sent`, 'error'));
      if (p.waiting && flowPhase(row) !== 'pending') return closing(say(c, promptClosedNote(row, row, c.now), 'error'));
      return closing(carryOut(c, row.source, decideWithPrompt(row, c.live.sources.get(row.source), p.action, p.duration, p.scope, c.now)));
    }
    const row = c.model.rules.find((r) => r.key === p.ruleKey);
    if (!row) return closing(say(c, 'that rule is gone already', 'error'));
    return closing(carryOut(c, row.source, decideDeleteRule(row, c.model.table.sources.get(row.source))));
  },
  'delete-rule'(_, c) {
    if (c.ui.view !== 'rules') return say(c, 'd deletes a rule in the rules view (press 3)', 'error');
    const row = c.model.rules[c.model.cursor];
    if (!row) return say(c, 'no rule selected', 'error');
    return act({ type: 'confirm', confirm: { kind: 'delete-rule', ruleKey: row.key, label: `${row.rule.action} ${ruleIdentityLabel(row.rule)}` } });
  },
  none: () => NOTHING,
};

export function outcomeOf(intent: Intent, c: IntentContext): Outcome {
  return (HANDLERS[intent.kind] as (i: Intent, c: IntentContext) => Outcome)(intent, c);
}
