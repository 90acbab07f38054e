// The one stateful component: subscribes to the store's snapshots, keeps the UI state in a reducer,
// turns key presses into UI actions or messages to the flow's own source, and hands plain data to
// <Screen>.
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { useInput, useStdout, type Key } from 'ink';
import { countFlows, flowPhase } from '../state/derive.js';
import { PendingPin, nextPinned, stickyWindow } from '../state/pending.js';
import type { FlowRow } from '../state/types.js';
import { FlowFilter } from '../state/filter.js';
import type { TableState } from '../state/types.js';
import { initialUi, reduceUi, type UiState, type ViewName } from '../state/ui.js';
import { FlowsSelector, selectProcesses, selectRules, visibleWindow } from '../state/views.js';
import { confirmChoiceKeys, intentFor, type Intent, type KeyMode } from '../ui/keys.js';
import { Screen, footerLines, screenLayout, selectedDetails } from '../ui/Screen.js';
import { ruleIdentityLabel } from '../ui/columns.js';
import { cannotAct, decideDeleteRule, decideOnce, decideProcessOnce, pendingFlowsOf, type Decision } from './decide.js';
import { PendingWatch, asksForVerdicts, promptClosedNote, settledNote } from './pending-watch.js';
import { PROMPT_DURATIONS, PROMPT_SCOPES, decideWithPrompt, flowLabel, initialDuration, promptOptions } from './prompt.js';
import type { Clock, FlowStore } from './store.js';
import { useFrozen } from './use-frozen.js';

export interface Viewport {
  rows: number;
  columns: number;
}

export interface RootProps {
  store: FlowStore;
  clock: Clock;
  ascii: boolean;
  /** One line under the source lines that stays for the whole session (e.g. why the passive monitor
   *  runs and how to reach the agent instead). */
  banner?: string;
  /** Terminal size; taken from stdout (and its resize events) when not given. Tests pass it. */
  viewport?: Viewport;
  /** Rings for flows that started waiting for a verdict (see bell.ts); m mutes it. */
  alert?: (flows: readonly FlowRow[]) => void;
  /** Whether the bell starts on (--no-bell: off). Default on. */
  bell?: boolean;
  onQuit(): void;
}

/** A status note older than this gives way to the key hints. */
const NOTE_MS = 8_000;

function useSnapshot(store: FlowStore): TableState {
  const [state, setState] = useState(() => store.current());
  useEffect(() => {
    const sub = store.snapshots$.subscribe(setState);
    return () => sub.unsubscribe();
  }, [store]);
  return state;
}

function useViewport(given: Viewport | undefined): Viewport {
  const { stdout } = useStdout();
  const measure = (): Viewport => ({ rows: stdout.rows || 24, columns: stdout.columns || 80 });
  const [size, setSize] = useState(measure);
  useEffect(() => {
    if (given) return;
    const onResize = () => setSize(measure());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout, given]);
  return given ?? size;
}

export function Root(props: RootProps) {
  const { store, clock, ascii } = props;
  const live = useSnapshot(store);
  const viewport = useViewport(props.viewport);
  const [ui, dispatch] = useReducer(reduceUi, undefined, initialUi);
  const frozen = useFrozen(live, ui.frozen, clock);
  const table = frozen ?? live;

  const flowsSelector = useMemo(() => new FlowsSelector(), []);
  const pendingPin = useMemo(() => new PendingPin(), []);
  const pendingWatch = useMemo(() => new PendingWatch(), []);
  const [bell, setBell] = useState(props.bell ?? true);
  const processFilter = useMemo(() => new FlowFilter(), []);
  const tops = useRef<Record<ViewName, number>>({ flows: 0, processes: 0, rules: 0 });

  // Frozen, the counts are the copy's, but flows waiting for a verdict are counted live: they still
  // need an answer.
  const counts = useMemo(() => (frozen ? { ...countFlows(frozen), pending: live.tally.pending } : countFlows(live)), [frozen, live, live.rev]);
  // Every pending flow of the live table is pinned on top, whatever the filter, sort or freeze.
  const pinnedFlows = pendingPin.pin(flowsSelector.select(table, { sort: ui.flowSort, filter: ui.filter }), live, ui.frozen);
  const flows = pinnedFlows.rows;
  const processes = useMemo(
    () => (ui.view === 'processes' ? selectProcesses(table, { sort: ui.processSort, filter: ui.filter }, processFilter) : []),
    [ui.view, table, table.rev, ui.processSort, ui.filter, processFilter],
  );
  const rules = useMemo(() => selectRules(table), [table, table.rev]);
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
  const { tableRows, detailRows } = screenLayout(height, table.sources.size + (props.banner ? 1 : 0), details?.lines.length, footerLines(ui));
  const win =
    ui.view === 'flows'
      ? stickyWindow(rows.length, cursor, tableRows, tops.current.flows, pinnedFlows.pinned)
      : { ...visibleWindow(rows.length, cursor, tableRows, tops.current[ui.view]), sticky: 0 };
  tops.current[ui.view] = win.top;
  cursor = win.cursor;

  // An error the extension answered (e.g. a verdict for a flow it no longer holds) goes to the
  // status line, so an action never fails silently.
  const lastError = live.lastError;
  useEffect(() => {
    if (!lastError) return;
    dispatch({ type: 'status', note: { text: `${lastError.source}: ${lastError.code}: ${lastError.message}`, tone: 'error', time: clock.now() } });
  }, [lastError, clock]);

  // Flows that started waiting ring the bell; one the default decided gets a note; a prompt whose
  // flow was decided before the person answered closes, saying so.
  const confirmRef = useRef(ui.confirm);
  confirmRef.current = ui.confirm;
  const bellRef = useRef(bell);
  bellRef.current = bell;
  useEffect(() => {
    const { appeared, settled } = pendingWatch.update(live);
    const asking = appeared.filter((row) => asksForVerdicts(live.sources.get(row.source)));
    if (asking.length > 0 && bellRef.current) props.alert?.(asking);
    const now = clock.now();
    const open = confirmRef.current;
    for (const { was, now: row } of settled) {
      if (open?.kind === 'rule' && open.rowKey === was.key && open.waiting) {
        dispatch({ type: 'confirm', confirm: undefined });
        dispatch({ type: 'status', note: { text: promptClosedNote(was, row, now), tone: 'error', time: now } });
        continue;
      }
      const text = settledNote(was, row, now);
      if (text && row?.flow.verdict?.by !== 'rule') dispatch({ type: 'status', note: { text, tone: row?.flow.verdict?.action === 'block' ? 'error' : 'info', time: now } });
    }
  }, [live, pendingWatch, clock, props.alert]);

  const note = ui.status && clock.now() - ui.status.time < NOTE_MS ? ui.status : undefined;
  const mode: KeyMode = ui.help ? 'help' : ui.editingFilter ? 'filter' : ui.confirm ? 'confirm' : 'normal';

  const say = (text: string, tone: 'info' | 'error' = 'info') => dispatch({ type: 'status', note: { text, tone, time: clock.now() } });
  const carryOut = (sourceId: string, decision: Decision) => {
    if ('refuse' in decision) return say(decision.refuse, 'error');
    const result = store.send(sourceId, decision.send);
    if (result.ok) say(decision.note);
    else say(`could not send: ${result.error ?? 'the extension is not connected'}`, 'error');
  };
  const select = (index: number) => {
    const i = Math.min(Math.max(index, 0), Math.max(rows.length - 1, 0));
    dispatch({ type: 'select', index: i, key: rows[i]?.key });
  };

  const run = (intent: Intent) => {
    switch (intent.kind) {
      case 'move': {
        const page = Math.max(tableRows - 1, 1);
        const to = { up: cursor - 1, down: cursor + 1, 'page-up': cursor - page, 'page-down': cursor + page, home: 0, end: rows.length - 1 }[intent.to];
        // Paging scrolls the view with the cursor, as in less.
        if (intent.to === 'page-down') tops.current[ui.view] += page;
        if (intent.to === 'page-up') tops.current[ui.view] = Math.max(tops.current[ui.view] - page, 0);
        return select(to);
      }
      case 'view':
        return dispatch({ type: 'view', view: intent.view });
      case 'cycle-view':
        return dispatch({ type: 'cycle-view', step: intent.step });
      case 'sort-next':
        return dispatch({ type: 'sort-next', step: intent.step });
      case 'sort-reverse':
        return dispatch({ type: 'sort-reverse' });
      case 'filter-start':
        return dispatch({ type: 'filter-start' });
      case 'filter-type':
        return dispatch({ type: 'filter-type', text: intent.text });
      case 'filter-erase':
        return dispatch({ type: 'filter-erase' });
      case 'filter-keep':
        return dispatch({ type: 'filter-keep' });
      case 'filter-clear':
        return dispatch({ type: 'filter-clear' });
      case 'toggle-insecure':
        return dispatch({ type: 'toggle-insecure' });
      case 'details':
        return dispatch({ type: 'details', open: !ui.details });
      case 'detail-scroll':
        if (!details) return say('J/K scroll the details pane: open it with Enter', 'error');
        // No scrolling past the last line (else K would first have to climb back).
        if (intent.step > 0 && ui.detailScroll >= details.lines.length - (detailRows - 1)) return;
        return dispatch({ type: 'detail-scroll', step: intent.step });
      case 'escape':
        if (ui.confirm) return dispatch({ type: 'confirm', confirm: undefined });
        if (ui.details) return dispatch({ type: 'details', open: false });
        if (ui.filter.query) return dispatch({ type: 'filter-clear' });
        return;
      case 'help':
        return dispatch({ type: 'help', open: !ui.help });
      case 'freeze':
        return dispatch({ type: 'freeze' });
      case 'quit':
        return props.onQuit();
      case 'next-pending': {
        // Pending flows are the pinned rows, whatever the filter: n walks them from any view.
        const at = nextPinned(ui.view === 'flows' ? cursor : -1, pinnedFlows.pinned);
        if (at === undefined) return say('no flow is waiting for a verdict');
        if (ui.view !== 'flows') dispatch({ type: 'view', view: 'flows' });
        return dispatch({ type: 'select', index: at, key: flows[at]?.key });
      }
      case 'toggle-bell':
        setBell(!bell);
        return say(bell ? 'bell muted: new pending flows no longer ring (m turns it back on)' : 'bell on: each new pending flow rings');
      case 'confirm-duration':
        return dispatch({ type: 'confirm-duration', duration: intent.duration });
      case 'confirm-cycle': {
        const c = ui.confirm;
        if (c?.kind !== 'rule') return;
        if (intent.axis === 'duration') {
          const at = PROMPT_DURATIONS.indexOf(c.duration);
          return dispatch({ type: 'confirm-duration', duration: PROMPT_DURATIONS[(at + intent.step + PROMPT_DURATIONS.length) % PROMPT_DURATIONS.length]! });
        }
        const at = PROMPT_SCOPES.indexOf(c.scope as (typeof PROMPT_SCOPES)[number]);
        return dispatch({ type: 'confirm-scope', scope: PROMPT_SCOPES[(at + intent.step + PROMPT_SCOPES.length) % PROMPT_SCOPES.length]! });
      }
      case 'verdict': {
        if (ui.view === 'rules') return say('a/b/A/B act on a flow or a process: switch to the flows or processes view (1 or 2)', 'error');
        if (ui.view === 'processes' && !intent.always) {
          const p = processes[cursor];
          if (!p) return say('no process selected', 'error');
          const d = decideProcessOnce(p, pendingFlowsOf(table, p), (s) => table.sources.get(s), intent.action);
          if ('refuse' in d) return say(d.refuse, 'error');
          for (const { source, send } of d.sends) {
            const result = store.send(source, send);
            if (!result.ok) return say(`could not send: ${result.error ?? 'the extension is not connected'}`, 'error');
          }
          return say(d.note);
        }
        // A/B on a process: the rule is made from its newest flow (same identity). A row acts as it
        // is now in the live table (a frozen row may be out of date).
        const shown = ui.view === 'processes' ? processes[cursor]?.sample : flows[cursor];
        const row = shown ? (live.flows.get(shown.key) ?? shown) : undefined;
        if (!row) return say(ui.view === 'processes' ? 'no process selected' : 'no flow selected', 'error');
        const info = live.sources.get(row.source) ?? table.sources.get(row.source);
        if (!intent.always) return carryOut(row.source, decideOnce(row, info, intent.action));
        // Ask first, unless the extension cannot act at all (say so right away).
        const refused = cannotAct(info);
        if (refused) return say(refused, 'error');
        const options = promptOptions(row, info);
        const waiting = flowPhase(row) === 'pending';
        if (!waiting && options.durations.every((d) => d.unavailable)) return say(options.durations.find((d) => d.id === 'always')!.unavailable!, 'error');
        return dispatch({
          type: 'confirm',
          confirm: { kind: 'rule', action: intent.action, rowKey: row.key, scope: 'process', duration: initialDuration(options), waiting, label: flowLabel(row) },
        });
      }
      case 'confirm-scope':
        return dispatch({ type: 'confirm-scope', scope: intent.scope });
      case 'confirm-yes':
        return confirm(ui);
      case 'delete-rule': {
        if (ui.view !== 'rules') return say('d deletes a rule in the rules view (press 3)', 'error');
        const row = rules[cursor];
        if (!row) return say('no rule selected', 'error');
        return dispatch({ type: 'confirm', confirm: { kind: 'delete-rule', ruleKey: row.key, label: `${row.rule.action} ${ruleIdentityLabel(row.rule)}` } });
      }
      case 'none':
        return;
    }
  };

  const confirm = (s: UiState) => {
    const c = s.confirm;
    dispatch({ type: 'confirm', confirm: undefined });
    if (!c) return;
    if (c.kind === 'rule') {
      // The prompt's own flow, as it is now: never the row under the cursor.
      const row = live.flows.get(c.rowKey);
      if (!row) return say(`${c.label} has left the table; nothing was sent`, 'error');
      if (c.waiting && flowPhase(row) !== 'pending') return say(promptClosedNote(row, row, clock.now()), 'error');
      return carryOut(row.source, decideWithPrompt(row, live.sources.get(row.source), c.action, c.duration, c.scope, clock.now()));
    }
    const row = rules.find((r) => r.key === c.ruleKey);
    if (!row) return say('that rule is gone already', 'error');
    return carryOut(row.source, decideDeleteRule(row, table.sources.get(row.source)));
  };

  // Keys can arrive after a render but before React re-attaches the input handler (passive effects
  // run later); going through a ref set during render means a key always acts on what is on screen.
  const latest = useRef<(input: string, key: Key) => void>(() => {});
  latest.current = (input, key) => {
    const chunk = mode === 'confirm' ? confirmChoiceKeys(input, key) : undefined;
    if (chunk) for (const intent of chunk) run(intent);
    else run(intentFor(input, key, mode));
  };
  const onInput = useCallback((input: string, key: Key) => latest.current(input, key), []);
  useInput(onInput);

  const promptRow = ui.confirm?.kind === 'rule' ? live.flows.get(ui.confirm.rowKey) : undefined;
  const shownUi = note === ui.status ? ui : { ...ui, status: undefined };
  return (
    <Screen
      width={viewport.columns}
      height={height}
      ascii={ascii}
      banner={props.banner}
      now={frozen ? frozen.now : Math.max(table.now, clock.now())}
      sources={[...table.sources.values()]}
      counts={counts}
      ui={shownUi}
      flows={flows}
      processes={processes}
      rules={rules}
      top={win.top}
      cursor={cursor}
      sticky={win.sticky}
      pinned={pinnedFlows.pinned}
      prompt={promptRow ? { row: promptRow, info: live.sources.get(promptRow.source) } : ui.confirm?.kind === 'rule' ? { row: undefined, info: undefined } : undefined}
      bell={bell}
    />
  );
}

