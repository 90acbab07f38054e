// The one stateful component: subscribes to the store's snapshots, keeps the UI state in a reducer
// (state/ui.ts), carries each key out against the state the previous key left (key-runner.ts), and
// hands <Screen> the plain data of the screen model (screen-model.ts). Render only derives: every
// change to the UI state is an action, taken in an input handler or an effect.
import { useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from 'react';
import { useStdin, useStdout } from 'ink';
import type { FlowRow, TableState } from '../state/types.js';
import { initialUi, reduceUi, type UiAction, type UiState } from '../state/ui.js';
import { KeyDecoder } from '../ui/key-decoder.js';
import { Screen } from '../ui/Screen.js';
import type { Effect } from './intents.js';
import { note } from './intents.js';
import { runKeys, startRead, type Read } from './key-runner.js';
import { PendingWatch, asksForVerdicts, promptClosedNote, settledNote } from './pending-watch.js';
import { ScreenModeler, type Viewport } from './screen-model.js';
import type { Clock, FlowStore } from './store.js';
import type { HistoryEventKind } from '../history/batch.js';
import { pageQueryOf } from '../state/history-view.js';
import { ProcessTraffic } from '../state/process-traffic.js';
import { historyPoints, type HistoryLoad } from '../ui/HistoryView.js';
import type { HistorySource } from './history-source.js';
import { useAgentHistoryFile, useHistoryEvents, useHistoryPage } from './use-history.js';

export type { Viewport } from './screen-model.js';

/** How an event from the history is named on the status line. */
const EVENT_WORD: Record<HistoryEventKind, string> = { 'first-seen': 'new program', changed: 'binary CHANGED', 'rule-blocking': 'rule blocking' };

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
  /** The history the history view (4) shows; its events (a program seen for the first time, a
   *  changed binary, a rule that started blocking) go to the status line and ring `alertEvents`. */
  history?: HistorySource;
  alertEvents?: (details: readonly string[]) => void;
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

/** What the key handler needs from the last committed frame. */
interface Committed {
  ui: UiState;
  live: TableState;
  viewport: Viewport;
  history: HistoryLoad;
}

/** Feeds every read of the terminal to `onRead`, as Ink's input parser cut it (one escape sequence
 *  or a run of plain text), with a flag for the first piece of each read. */
function useRawInput(onRead: (raw: string, first: boolean) => void): void {
  const { setRawMode, internal_eventEmitter: emitter } = useStdin();
  useEffect(() => {
    setRawMode(true);
    return () => setRawMode(false);
  }, [setRawMode]);
  const handler = useRef(onRead);
  useLayoutEffect(() => {
    handler.current = onRead;
  });
  useEffect(() => {
    // Ink emits the pieces of one read synchronously: a read ends when the current task does.
    let inRead = false;
    const onInput = (raw: string): void => {
      const first = !inRead;
      if (first) {
        inRead = true;
        queueMicrotask(() => {
          inRead = false;
        });
      }
      handler.current(raw, first);
    };
    emitter.on('input', onInput);
    return () => {
      emitter.off('input', onInput);
    };
  }, [emitter]);
}

export function Root(props: RootProps) {
  const { store, clock, ascii } = props;
  const live = useSnapshot(store);
  const viewport = useViewport(props.viewport);
  const [ui, dispatch] = useReducer(reduceUi, { bell: props.bell }, initialUi);
  const traffic = useMemo(() => new ProcessTraffic(), []);
  const modeler = useMemo(() => new ScreenModeler((key, now) => traffic.recent(key, now)), [traffic]);
  const pendingWatch = useMemo(() => new PendingWatch(), []);
  const decoder = useMemo(() => new KeyDecoder(), []);
  const bannerLines = props.banner ? 1 : 0;
  // Against the agent, the history file is the one its hello names (hello.mode.history).
  const historyFile = useAgentHistoryFile(props.history, live.sources);
  // The history view's page, read off the render path while the view is shown.
  const history = useHistoryPage(props.history, ui.view === 'history' ? pageQueryOf(ui.history, historyPoints(viewport.columns, ui.history)) : undefined, clock, 15_000, historyFile);
  const model = modeler.model(ui, live, viewport, bannerLines, history);

  // Each program's bytes over the last minutes, from the table's counters (the processes view's sparkline).
  useEffect(() => {
    traffic.sample(live);
  }, [live, traffic]);

  // What the history recorded while flowtop runs: said on the status line, and the bell rings.
  const bellOn = useRef(ui.bell);
  bellOn.current = ui.bell;
  useHistoryEvents(props.history, clock, (events) => {
    const now = clock.now();
    const first = events[0]!;
    const more = events.length > 1 ? ` (+${events.length - 1} more: 4 shows the history)` : '';
    dispatch(note(`${EVENT_WORD[first.kind]}: ${first.detail}${more}`, first.kind === 'first-seen' ? 'info' : 'error', now));
    if (bellOn.current) props.alertEvents?.(events.map((e) => `${EVENT_WORD[e.kind]}: ${e.detail}`));
  });

  // An error the extension answered (e.g. a verdict for a flow it no longer holds) goes to the
  // status line, so an action never fails silently.
  const lastError = live.lastError;
  useEffect(() => {
    if (!lastError) return;
    dispatch(note(`${lastError.source}: ${lastError.code}: ${lastError.message}`, 'error', clock.now()));
  }, [lastError, clock]);

  // Flows that started waiting ring the bell; one the default decided gets a note; a prompt whose
  // flow was decided before the person answered closes, saying so. (Run again for the same table
  // when the prompt or the bell changes, it finds nothing new.)
  const { confirm: open, bell } = ui;
  useEffect(() => {
    const { appeared, settled } = pendingWatch.update(live);
    const asking = appeared.filter((row) => asksForVerdicts(live.sources.get(row.source)));
    if (asking.length > 0 && bell) props.alert?.(asking);
    const now = clock.now();
    for (const { was, now: row } of settled) {
      if (open?.kind === 'rule' && open.rowKey === was.key && open.waiting) {
        dispatch({ type: 'confirm', confirm: undefined });
        dispatch(note(promptClosedNote(was, row, now), 'error', now));
        continue;
      }
      const text = settledNote(was, row, now);
      if (text && row?.flow.verdict?.by !== 'rule') dispatch(note(text, row?.flow.verdict?.action === 'block' ? 'error' : 'info', now));
    }
  }, [live, pendingWatch, clock, props.alert, open, bell]);

  // Keys act on the state the last key left, which React commits later: the handler keeps it here
  // between keys, and each commit brings it up to date (with what effects dispatched meanwhile).
  const committed = useRef<Committed>({ ui, live, viewport, history });
  useLayoutEffect(() => {
    committed.current = { ui, live, viewport, history };
  }, [ui, live, viewport, history]);
  const read = useRef<Read>(startRead(ui));

  const perform = (effect: Effect): UiAction[] => {
    const now = clock.now();
    if (effect.kind === 'quit') {
      props.onQuit();
      return [];
    }
    for (const { source, message } of effect.sends) {
      const result = store.send(source, message);
      if (!result.ok) return [note(`could not send: ${result.error ?? 'the extension is not connected'}`, 'error', now)];
    }
    return [note(effect.note, 'info', now)];
  };

  useRawInput((raw, first) => {
    const events = decoder.decode(raw);
    const { ui: from, live: table, viewport: size, history: loaded } = committed.current;
    if (first) read.current = startRead(from);
    if (events.length === 0) return;
    const { state, actions } = runKeys(from, events, read.current, {
      model: (u) => modeler.model(u, table, size, bannerLines, loaded),
      live: table,
      now: clock.now(),
      perform,
    });
    committed.current = { ...committed.current, ui: state };
    for (const a of actions) dispatch(a);
  });

  const fresh = ui.status && clock.now() - ui.status.time < NOTE_MS;
  const shownUi = fresh || !ui.status ? ui : { ...ui, status: undefined };
  const promptRow = ui.confirm?.kind === 'rule' ? live.flows.get(ui.confirm.rowKey) : undefined;
  return (
    <Screen
      width={viewport.columns}
      height={model.height}
      ascii={ascii}
      banner={props.banner}
      now={ui.frozen ? ui.frozen.now : Math.max(model.table.now, clock.now())}
      liveNow={Math.max(live.now, clock.now())}
      sources={[...model.table.sources.values()]}
      hintedUser={model.hintedUser}
      counts={model.counts}
      ui={shownUi}
      flows={model.flows}
      processes={model.processes}
      rules={model.rules}
      top={model.top}
      cursor={model.cursor}
      sticky={model.sticky}
      pinned={model.pinned}
      tableRows={model.tableRows}
      detailRows={model.detailRows}
      details={model.details}
      prompt={promptRow ? { row: promptRow, info: live.sources.get(promptRow.source) } : ui.confirm?.kind === 'rule' ? { row: undefined, info: undefined } : undefined}
      bell={ui.bell}
      history={{ load: history, ...(historyFile ? { path: historyFile } : {}) }}
    />
  );
}
