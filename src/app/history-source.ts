// Where the TUI's history view reads from, and the reading itself off the render path: the reader's
// own thread (history/reader-thread.ts) when its compiled file exists, else the same queries inline
// after the current frame (running from TypeScript sources, e.g. under the test runner).
//
// Which file: `--history-db PATH` when given; against the agent, the file its hello names
// (hello.mode.history; until it has said, and from an agent that does not say, the default
// /var/lib/flowtop/history.db, readable by root and group flowtop); with the passive monitor, the
// user's own ($XDG_STATE_HOME/flowtop/history.db); the demo has none.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { expectErrno } from '../errno.js';
import type { EventEntry } from '../history/query.js';
import { AGENT_HISTORY_PATH, userHistoryPath } from '../history/paths.js';
import { HistoryQueries, type QueryAnswer, type QueryRequest, type ReadProblem } from '../history/reader-core.js';
import type { HistoryPage, PageQuery } from '../history/view-page.js';

/** Whose history the TUI shows. */
export type HistoryOwner = 'agent' | 'monitor' | 'file' | 'none';

/** The view's words for a file it cannot show: what is wrong, and what to do about it. */
export interface HistoryUnavailable {
  reason: string;
  hint?: string;
}

export type PageResult = { ok: true; page: HistoryPage } | { ok: false; unavailable: HistoryUnavailable };
export type EventsResult = { ok: true; events: EventEntry[] } | { ok: false; unavailable: HistoryUnavailable };

export interface HistorySource {
  readonly owner: HistoryOwner;
  /** The file read (absent: none, see `owner`). Against the agent it follows what the agent says. */
  readonly path?: string;
  /** Against the agent: what its hello said of its history (`hello.mode.history`: a path, "off", or
   *  undefined when it does not say), and which socket said it. Returns whether the file read
   *  changed (pages read before are then another file's). Other owners ignore it. */
  followAgent(announced: string | undefined, socket: string): boolean;
  /** Resolves once the reader has opened the file (or failed to): started with the source, so the
   *  thread and the file are ready by the time the view is opened. */
  ready(): Promise<void>;
  page(query: PageQuery, now: number): Promise<PageResult>;
  /** Events recorded after `after` (ms), oldest first. */
  events(after: number, now: number): Promise<EventsResult>;
  close(): void;
}

export interface HistoryChoice {
  /** `--history-db PATH`. */
  path?: string;
  /** What supplies the flows: the agent (or another extension socket), the passive monitor, the demo
   *  only, or a fleet's hosts only (each keeps its history on its own machine). */
  flows: 'agent' | 'monitor' | 'demo' | 'fleet';
}

export function chooseHistory(choice: HistoryChoice, env: NodeJS.ProcessEnv, agentPath = AGENT_HISTORY_PATH): { owner: HistoryOwner; path?: string } {
  if (choice.path !== undefined) return { owner: 'file', path: choice.path };
  if (choice.flows === 'agent') return { owner: 'agent', path: agentPath };
  if (choice.flows === 'monitor') return { owner: 'monitor', path: userHistoryPath(env) };
  return { owner: 'none' };
}

export interface OpenOptions {
  /** 'auto': the thread when it can run (the default). */
  thread?: 'auto' | 'inline';
  /** The groups of this user (process.getgroups), to say whether joining group flowtop would help. */
  groups?: readonly number[];
  /** The agent's file (default /var/lib/flowtop/history.db; tests put it elsewhere). */
  agentPath?: string;
}

export function openHistorySource(choice: HistoryChoice, env: NodeJS.ProcessEnv, options: OpenOptions = {}): HistorySource {
  const { owner, path: chosen } = chooseHistory(choice, env, options.agentPath);
  const groups = options.groups ?? (typeof process.getgroups === 'function' ? process.getgroups() : []);
  const demo: HistoryUnavailable = choice.flows === 'fleet'
    ? { reason: 'each fleet host keeps its history on its own machine', hint: 'flowtop history on that host, or flowtop --history-db PATH for a file here' }
    : { reason: 'the demo records no history', hint: 'flowtop --history-db PATH shows a history file beside it' };
  // The file read and its reader; `off` (no file) says why instead.
  let path = chosen;
  let off: HistoryUnavailable | undefined = chosen === undefined ? demo : undefined;
  let next = 0;
  let ask: Asker | undefined;
  let opened: Promise<void> = Promise.resolve();
  const use = (file: string | undefined): void => {
    ask?.close();
    ask = undefined;
    path = file;
    if (file === undefined) return;
    ask = options.thread === 'inline' ? inlineAsker(file) : threadAsker(file) ?? inlineAsker(file);
    opened = options.thread === 'inline' ? Promise.resolve() : ask.ask({ id: ++next, op: 'open' }).then(() => undefined);
  };
  use(chosen);
  /** One question to the current file's reader; undefined when there is none (see `off`). */
  const question = async (request: (id: number) => QueryRequest): Promise<{ answer: QueryAnswer; path: string } | { unavailable: HistoryUnavailable }> => {
    const [asker, file] = [ask, path];
    if (!asker || file === undefined) return { unavailable: off ?? demo };
    return { answer: await asker.ask(request(++next)), path: file };
  };
  return {
    owner,
    get path() {
      return path;
    },
    followAgent(announced, socket) {
      if (owner !== 'agent') return false;
      const wanted = announced === undefined ? options.agentPath ?? AGENT_HISTORY_PATH : announced === 'off' ? undefined : announced;
      off = wanted === undefined ? { reason: `the agent (${socket}) records no history`, hint: 'it was started with --no-history, or could not use its file (its log says why); flowtop --history-db PATH shows another history file' } : undefined;
      if (wanted === path) return false;
      use(wanted);
      return true;
    },
    ready: () => opened,
    async page(query, now) {
      const q = await question((id) => ({ id, op: 'page', query, now }));
      if ('unavailable' in q) return { ok: false, unavailable: q.unavailable };
      const a = q.answer;
      if (!a.ok) return { ok: false, unavailable: explainProblem(a.problem, owner, q.path, groups) };
      return 'page' in a ? { ok: true, page: a.page } : { ok: false, unavailable: { reason: 'the history reader answered out of turn' } };
    },
    async events(after, now) {
      const q = await question((id) => ({ id, op: 'events', after, now }));
      if ('unavailable' in q) return { ok: false, unavailable: q.unavailable };
      const a = q.answer;
      if (!a.ok) return { ok: false, unavailable: explainProblem(a.problem, owner, q.path, groups) };
      return 'events' in a ? { ok: true, events: a.events } : { ok: false, unavailable: { reason: 'the history reader answered out of turn' } };
    },
    close: () => use(undefined),
  };
}

interface Asker {
  ask(request: QueryRequest): Promise<QueryAnswer>;
  close(): void;
}

/** Queries in this thread, each after the current frame and key presses have been handled. */
function inlineAsker(path: string): Asker {
  const queries = new HistoryQueries(path);
  return {
    ask: (request) => new Promise((resolve) => setImmediate(() => resolve(queries.answer(request)))),
    close: () => queries.close(),
  };
}

function threadAsker(path: string): Asker | undefined {
  const url = new URL('../history/reader-thread.js', import.meta.url);
  if (url.protocol !== 'file:' || !existsSync(fileURLToPath(url))) return undefined;
  const worker = new Worker(url, { workerData: path });
  // The TUI's life is not tied to its reader: an idle thread does not keep the process up.
  worker.unref();
  const waiting = new Map<number, (a: QueryAnswer) => void>();
  let failed: string | undefined;
  const failAll = (message: string) => {
    failed = message;
    for (const [id, resolve] of waiting) resolve({ id, ok: false, problem: { code: 'failed', message } });
    waiting.clear();
  };
  worker.on('message', (a: QueryAnswer) => {
    const resolve = waiting.get(a.id);
    waiting.delete(a.id);
    resolve?.(a);
  });
  worker.on('error', (error) => failAll(`the history reader failed: ${error.message}`));
  worker.on('exit', () => failAll(failed ?? 'the history reader stopped'));
  return {
    ask: (request) => new Promise((resolve) => {
      if (failed) return resolve({ id: request.id, ok: false, problem: { code: 'failed', message: failed } });
      waiting.set(request.id, resolve);
      worker.postMessage(request);
    }),
    close: () => {
      failed ??= 'closed';
      void worker.terminate();
    },
  };
}

/** A reading problem in the view's words, with what this user can do about it. */
export function explainProblem(p: ReadProblem, owner: HistoryOwner, path: string, groups: readonly number[]): HistoryUnavailable {
  // A file in a folder this user may not enter looks absent: say who may enter it instead.
  const closed = p.code === 'missing' || p.code === 'denied' ? closedToUser(path, groups) : undefined;
  if (closed) {
    return closed.gid !== 0
      ? { reason: `cannot read ${path}: it is for root and group ${groupName(closed.gid)}, and you are not in that group`, hint: `to join: sudo usermod -aG ${groupName(closed.gid)} $USER, then log in again` }
      : { reason: `cannot read ${path}: ${closed.what} is for root only`, hint: 'run flowtop as root, or give the agent a history its group can read' };
  }
  switch (p.code) {
    case 'missing':
      if (owner === 'agent') {
        return { reason: `no history yet: ${path} does not exist`, hint: 'the agent records there while it runs (flowtop agent; not with --no-history); a history kept elsewhere: flowtop --history-db PATH' };
      }
      if (owner === 'monitor') {
        return { reason: `no history yet: ${path} does not exist`, hint: `the agent's history, if it runs here: flowtop --history-db ${AGENT_HISTORY_PATH}` };
      }
      return { reason: `no history file at ${path}`, hint: 'the agent records into /var/lib/flowtop/history.db, the passive monitor into ~/.local/state/flowtop/history.db' };
    case 'denied':
      return { reason: p.message };
    case 'refused':
    case 'failed':
      return { reason: p.message };
  }
}

/** The file, or its folder, when this user (not root) cannot read it and root owns it. */
function closedToUser(path: string, groups: readonly number[]): { gid: number; what: string } | undefined {
  if (process.getuid?.() === 0) return undefined;
  for (const [at, what, mode] of [[dirname(path), 'its folder', constants.R_OK | constants.X_OK], [path, 'the file', constants.R_OK]] as const) {
    let st;
    try {
      st = statSync(at);
    } catch (error) {
      expectErrno(error, ['ENOENT', 'ENOTDIR', 'EACCES']); // not there, or not reachable: said elsewhere
      continue;
    }
    try {
      accessSync(at, mode);
    } catch (error) {
      expectErrno(error, ['EACCES', 'EPERM']);
      if (st.uid === 0 && !groups.includes(st.gid)) return { gid: st.gid, what };
      return undefined;
    }
  }
  return undefined;
}

/** The group's name from /etc/group ("flowtop" when the agent made it), else its number. */
function groupName(gid: number): string {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && Number(id) === gid) return name;
    }
  } catch (error) {
    expectErrno(error, ['ENOENT', 'EACCES']); // no group file, or not readable: the number is shown
  }
  return gid === 0 ? 'root' : String(gid);
}
