// Turns the command line into flow sources and attribution: extension sockets, the in-process demo,
// or — when no extension runs here — the passive monitor. Shared by `flowtop` and `flowtop list`.
import { Attributor } from '../attribution/attributor.js';
import { selectBackend } from '../attribution/select.js';
import type { AttributionBackend } from '../attribution/types.js';
import { startDemoExtension } from '../demo/index.js';
import { createPassiveMonitor } from '../monitor/index.js';
import type { TokenKind } from '../protocol/messages.js';
import { AGENT_GROUP } from '../agent/authorize.js';
import { createSocketSource } from '../source/socket-source.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
import { probeSocket } from '../source/probe.js';
import type { FlowSource } from '../source/types.js';
import { mergeSources, type MergedSources } from '../source/merge.js';
import type { FleetClientOptions } from '../fleet/client-options.js';
import type { AttributorLike } from './store.js';
import { Subject, type Observable } from 'rxjs';
import type { HistoryEvent } from '../history/index.js';
import type { OpenFlowNote } from '../history/continuation.js';

/** Records what the passive monitor sees into $XDG_STATE_HOME/flowtop/history.db (0600 in a 0700
 *  folder), with its own attribution backend; returns what stops it, the other flowtop that records
 *  there already, or undefined when it cannot run (said in `log`). */
async function recordPassiveMonitor(monitor: FlowSource, env: NodeJS.ProcessEnv, log: string[], events: Subject<HistoryEvent>): Promise<(() => Promise<void>) | { busy: string } | undefined> {
  const { prepareHistoryFile, userHistoryPath } = await import('../history/paths.js');
  const path = userHistoryPath(env);
  try {
    prepareHistoryFile(path, { fileMode: 0o600, dirMode: 0o700 });
  } catch (error) {
    log.push(`history: not recording: ${(error as Error).message}`);
    return undefined;
  }
  const { startHistory, RecordingBusy } = await import('../history/index.js');
  const continuation = await import('../history/continuation.js');
  const backend = selectBackend('linux-pidfd-v1', {});
  let history;
  try {
    history = startHistory({ path, program: 'flowtop', resolve: (tokens) => backend.resolve(tokens), log: (line) => log.push(line), onEvent: (e) => events.next(e) });
  } catch (error) {
    backend.close?.();
    if (error instanceof RecordingBusy) return { busy: error.message };
    log.push(`history: not recording: ${(error as Error).message}`);
    return undefined;
  }
  // Flows the last run left open, continued as the same rows when the snapshot shows them again.
  const leftOpen = continuation.readLeftOpen(path);
  const open = new Map<string, OpenFlowNote>();
  let continued: OpenFlowNote[] = [];
  // The snapshot a new subscriber gets comes during subscribe(): flows already open, whose counters
  // so far are not this run's traffic.
  let snapshot = true;
  const sub = monitor.events$.subscribe((e) => {
    let m = e.message;
    if (m.type === 'flow' && !open.has(m.flow.id)) {
      const before = snapshot ? leftOpen.get(m.flow.id) : undefined;
      if (before && before.raddr === m.flow.remote.address && before.rport === m.flow.remote.port) {
        m = { ...m, flow: { ...m.flow, time: before.start } };
        continued.push(before);
      }
      open.set(m.flow.id, { id: m.flow.id, start: m.flow.time, raddr: m.flow.remote.address, rport: m.flow.remote.port });
    } else if (m.type === 'end') {
      open.delete(m.id);
    }
    if (m.type === 'flow' || m.type === 'bytes' || m.type === 'end' || m.type === 'verdict') history.recorder.observe(m, snapshot);
  });
  snapshot = false;
  // The first rows go once their continuations are written (the recorder holds a new row a moment).
  const merge = (): void => {
    try {
      continued = continuation.mergeContinued(path, continued);
    } catch (error) {
      log.push(`history: could not merge the flows continued from the last run: ${(error as Error).message}`);
      continued = [];
    }
  };
  let tries = 0;
  const merging = continued.length > 0 ? setInterval(() => {
    merge();
    if (continued.length === 0 || ++tries >= 30) clearInterval(merging);
  }, 1000) : undefined;
  merging?.unref();
  return async () => {
    sub.unsubscribe();
    if (merging) clearInterval(merging);
    // The open flows are noted before the file is let go: a flowtop taking over the recording
    // then continues them as the same rows.
    await history.close(() => {
      // A file the writer refused (said once already) is not touched.
      if (log.some((line) => line.startsWith('history: not recording'))) return;
      try {
        merge();
        continuation.noteOpenFlows(path, open.values());
      } catch (error) {
        log.push(`history: could not note the flows still open: ${(error as Error).message}`);
      }
    });
    backend.close?.();
  };
}

/** How often a flowtop whose history file another flowtop records into tries to take it over. */
const TAKE_OVER_EVERY_MS = 5_000;

/** Records the passive monitor, or — while another flowtop of this user records into the file — waits
 *  for it to quit and takes over (the monitor's snapshot then gives the flows open at that moment).
 *  Returns what stops it. */
async function recordWhenFree(monitor: FlowSource, env: NodeJS.ProcessEnv, log: string[], events: Subject<HistoryEvent>): Promise<() => Promise<void>> {
  let stop: (() => Promise<void>) | undefined;
  /** Why this flowtop does not record (another one does), while it waits. */
  let waiting: string | undefined;
  let closed = false;
  const attempt = async (): Promise<void> => {
    const got = await recordPassiveMonitor(monitor, env, log, events);
    if (got && 'busy' in got) {
      waiting = got.busy;
      return;
    }
    if (closed) return void (await got?.());
    if (waiting) log.push(`history: this flowtop recorded from ${new Date().toLocaleTimeString()}, when the other one that recorded quit`);
    waiting = undefined;
    stop = got;
  };
  await attempt();
  let timer: NodeJS.Timeout | undefined;
  let trying: Promise<void> | undefined;
  if (waiting) {
    timer = setInterval(() => {
      if (trying || !waiting) return;
      trying = attempt().catch((error: Error) => void log.push(`history: could not take over the recording: ${error.message}`)).finally(() => {
        trying = undefined;
        if (!waiting && timer) clearInterval(timer);
      });
    }, TAKE_OVER_EVERY_MS);
    timer.unref();
  }
  return async () => {
    closed = true;
    if (timer) clearInterval(timer);
    await trying;
    if (waiting) log.push(`history: ${waiting}: this flowtop did not record it as well`);
    await stop?.();
  };
}

export interface SourceFlags {
  sockets: string[];
  /** `--demo [SCENARIO]`: true for the default scenario. */
  demo?: string | true;
  /** Record the passive monitor's flows into the user's history file (the TUI does; `list` does not). */
  history?: boolean;
  /** `--nats …`: a fleet's hosts, each its own source, joining as they appear. */
  fleet?: FleetClientOptions;
}

export interface OpenedSources {
  /** The sources known at start (a fleet's hosts join `merged` later). */
  sources: FlowSource[];
  /** Every source, those that join later included (give this to the store). */
  merged: MergedSources;
  attributorFor(kind: TokenKind): AttributorLike;
  /** What was chosen, in words (e.g. why the passive monitor runs). */
  note?: string;
  /** One line the TUI keeps on screen: the agent runs but this user may not use it, and how to join. */
  banner?: string;
  /** The passive monitor's history recording, when it runs: its events as they happen (first-seen,
   *  changed binary, rule blocking) for a view to show. */
  historyEvents?: Observable<HistoryEvent>;
  /** What the history recording had to say (problems, once each), for after the TUI has closed. */
  historyLog: string[];
  close(): Promise<void>;
}

export async function openSources(flags: SourceFlags, env: NodeJS.ProcessEnv, defaultPath = defaultSocketPath()): Promise<OpenedSources> {
  let replay: AttributionBackend | undefined;
  const closers: Array<() => Promise<void> | void> = [];
  const sources: FlowSource[] = [];
  let note: string | undefined;
  let banner: string | undefined;
  const historyLog: string[] = [];
  const historyEvents = new Subject<HistoryEvent>();
  if (flags.demo !== undefined) {
    const demo = await startDemoExtension({ scenario: flags.demo === true ? undefined : flags.demo, loop: true });
    replay = demo.replay;
    closers.push(() => demo.close());
    sources.push(createSocketSource(demo.socketPath));
  }
  const paths = explicitSocketPaths(flags.sockets, env);
  for (const path of paths) sources.push(createSocketSource(path));
  let fleet: { sources$: import('rxjs').Observable<FlowSource>; close(): Promise<void> } | undefined;
  if (flags.fleet) {
    const { openFleet } = await import('../fleet/fleet-source.js');
    // An agent on this machine judges this client's own connection to NATS: when it is not watched
    // here, a connection that fails says so (it may be waiting there for a verdict).
    const watched = paths.includes(defaultPath);
    const local = watched ? undefined : await probeSocket(defaultPath);
    const localAgent = local?.usable && local.hello?.capabilities.includes('verdicts') ? defaultPath : undefined;
    fleet = openFleet({ ...flags.fleet, ...(localAgent ? { localAgent } : {}) });
    const opened = fleet;
    closers.push(() => opened.close());
  }
  if (sources.length === 0 && !fleet) {
    // Chosen by flowtop, not by the person: used only if it will serve them, else the monitor.
    const probe = await probeSocket(defaultPath);
    if (probe.usable) {
      sources.push(createSocketSource(defaultPath));
    } else {
      note = `${probe.why}: showing this machine's connections with the passive monitor`;
      if (probe.denied) banner = `the agent at ${defaultPath} is for root and group ${AGENT_GROUP}; to join: sudo usermod -aG ${AGENT_GROUP} $USER, then log in again`;
      const monitor = createPassiveMonitor();
      sources.push(monitor);
      if (flags.history) closers.push(await recordWhenFree(monitor, env, historyLog, historyEvents));
    }
  }
  const attributorFor = (kind: TokenKind): AttributorLike => new Attributor(selectBackend(kind, { replay }));
  const merged = mergeSources(sources);
  if (fleet) merged.addFrom(fleet.sources$, (error) => historyLog.push(`fleet: ${error.message}`));
  return {
    sources,
    merged,
    attributorFor,
    note,
    banner,
    historyLog,
    historyEvents: historyEvents.asObservable(),
    async close() {
      merged.close();
      for (const c of closers) await c();
      historyEvents.complete();
    },
  };
}
