// The one stateful component: subscribes to the store's snapshots, keeps the UI state in a reducer,
// turns key presses into UI actions or messages to the flow's own source, and hands plain data to
// <Screen>.
import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { useInput, useStdout, type Key } from 'ink';
import type { RememberScope } from '../protocol/messages.js';
import { countFlows, flowPhase } from '../state/derive.js';
import { FlowFilter } from '../state/filter.js';
import type { TableState } from '../state/types.js';
import { initialUi, reduceUi, type UiState, type ViewName } from '../state/ui.js';
import { FlowsSelector, selectProcesses, selectRules, visibleWindow } from '../state/views.js';
import { intentFor, type Intent, type KeyMode } from '../ui/keys.js';
import { Screen, screenLayout, selectedDetails } from '../ui/Screen.js';
import { ruleIdentityLabel } from '../ui/columns.js';
import { decideAlways, decideDeleteRule, decideOnce, decideProcessOnce, pendingFlowsOf, type Decision } from './decide.js';
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
  const processFilter = useMemo(() => new FlowFilter(), []);
  const tops = useRef<Record<ViewName, number>>({ flows: 0, processes: 0, rules: 0 });

  // Frozen, the counts are the copy's, but flows waiting for a verdict are counted live: they still
  // need an answer.
  const counts = useMemo(() => (frozen ? { ...countFlows(frozen), pending: live.tally.pending } : countFlows(live)), [frozen, live, live.rev]);
  const flows = flowsSelector.select(table, { sort: ui.flowSort, filter: ui.filter });
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
  const { tableRows, detailRows } = screenLayout(height, table.sources.size + (props.banner ? 1 : 0), details?.lines.length);
  const win = visibleWindow(rows.length, cursor, tableRows, tops.current[ui.view]);
  tops.current[ui.view] = win.top;
  cursor = win.cursor;

  // An error the extension answered (e.g. a verdict for a flow it no longer holds) goes to the
  // status line, so an action never fails silently.
  const lastError = live.lastError;
  useEffect(() => {
    if (!lastError) return;
    dispatch({ type: 'status', note: { text: `${lastError.source}: ${lastError.code}: ${lastError.message}`, tone: 'error', time: clock.now() } });
  }, [lastError, clock]);

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
        if (ui.view !== 'flows') return say('n jumps between pending flows in the flows view (press 1)', 'error');
        for (let step = 1; step <= flows.length; step++) {
          const i = (cursor + step) % flows.length;
          if (flowPhase(flows[i]!) === 'pending') return select(i);
        }
        return say('no flow is waiting for a verdict');
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
        // A/B on a process: the rule is made from its newest flow (same identity).
        const row = ui.view === 'processes' ? processes[cursor]?.sample : flows[cursor];
        if (!row) return say(ui.view === 'processes' ? 'no process selected' : 'no flow selected', 'error');
        const info = table.sources.get(row.source);
        if (!intent.always) return carryOut(row.source, decideOnce(row, info, intent.action));
        // Ask first, unless the extension cannot act at all (say so right away).
        const probe = decideAlways(row, info, intent.action, 'process');
        if ('refuse' in probe) return say(probe.refuse, 'error');
        return dispatch({ type: 'confirm', confirm: { kind: 'rule', action: intent.action, rowKey: row.key, scope: 'process' } });
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
      const row = table.flows.get(c.rowKey);
      if (!row) return say('that flow has left the table; nothing was sent', 'error');
      const scope: RememberScope = c.scope;
      return carryOut(row.source, decideAlways(row, table.sources.get(row.source), c.action, scope));
    }
    const row = rules.find((r) => r.key === c.ruleKey);
    if (!row) return say('that rule is gone already', 'error');
    return carryOut(row.source, decideDeleteRule(row, table.sources.get(row.source)));
  };

  // Keys can arrive after a render but before React re-attaches the input handler (passive effects
  // run later); going through a ref set during render means a key always acts on what is on screen.
  const latest = useRef<(input: string, key: Key) => void>(() => {});
  latest.current = (input, key) => run(intentFor(input, key, mode));
  const onInput = useCallback((input: string, key: Key) => latest.current(input, key), []);
  useInput(onInput);

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
    />
  );
}

