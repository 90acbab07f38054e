// The agent's side of the fleet on its main thread: an observer that batches the events the agent sends
// its clients (a pending flow leaves at once, the rest within BATCH_MS) and hands them, already
// encoded, to the NATS link thread (link-worker.ts); requests that thread receives, answered by the
// responder; fleet rule changes, handed to whoever applies them. Nothing here waits on NATS.
// A link thread that dies (throws, exits, or says nothing for SILENT_MS: stuck, so it is ended) is
// started again after a pause that doubles from 1 s to 30 s (back to 1 s once a thread has run a
// minute), so a thread that dies at once cannot spin. Every batch is kept here until the stream has
// acknowledged it (within the same bound as the thread's backlog): what a thread that died had not
// published, and what came while none ran, go to the next one (a batch published twice keeps its
// Nats-Msg-Id, so the stream stores it once).
import { Worker } from 'node:worker_threads';
import { encodeLines } from '../protocol/codec.js';
import type { HelloMessage } from '../protocol/messages.js';
import type { AgentEvent, AgentObserver } from '../agent/observers.js';
import type { FleetLinkStatus, LinkToMain, LinkWorkerData, MainToLink } from './link-types.js';
import type { FleetResponder } from './responder.js';
import { MAX_BODY_BYTES } from './wire.js';

/** Events other than a pending flow wait at most this long to be handed over, in one batch. */
export const BATCH_MS = 20;
/** Default bound on the events kept while NATS cannot take them. */
export const DEFAULT_BACKLOG_BYTES = 64 * 1024 * 1024;

/** The pause before starting a link thread again: 1 s, doubling up to 30 s. */
export const RESTART_MIN_MS = 1_000;
export const RESTART_MAX_MS = 30_000;
/** A thread that ran this long before dying was working: the next pause starts again at RESTART_MIN_MS. */
export const RESTART_STABLE_MS = 60_000;
/** A thread reports its status every 0.5 s: one silent this long is stuck (blocked, or spinning in a
 *  loop) and is ended, then started again like one that died. */
export const SILENT_MS = 15_000;

/** The pause before the next start, after `failures` deaths in a row (the first is 0). */
export function restartDelay(failures: number): number {
  return Math.min(RESTART_MIN_MS * 2 ** Math.min(failures, 30), RESTART_MAX_MS);
}

export interface FleetLinkOptions extends Omit<LinkWorkerData, 'backlogBytes' | 'thread'> {
  backlogBytes?: number;
  /** RESTART_STABLE_MS unless given (tests shorten it). */
  restartStableMs?: number;
  log(line: string): void;
  /** The whole set of fleet rules for this host (after each connect), then each change. */
  onRules?(entries: Array<{ key: string; value: string }>): void;
  onRule?(key: string, value: string | undefined): void;
}

export class FleetLink implements AgentObserver {
  /** The running link thread; undefined while one that died waits to be started again. */
  private worker: Worker | undefined;
  private threads = 0;
  private threadStarted = 0;
  /** When the running thread last said anything (its status every 0.5 s); how long it had been silent
   *  when the watchdog ended it. */
  private lastHeard = 0;
  private silentFor: number | undefined;
  private readonly watchdog: NodeJS.Timeout;
  /** Deaths in a row (reset when a thread ran RESTART_STABLE_MS). */
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** When the next thread starts, while none runs. */
  private restartAt: number | undefined;
  /** Counters of the threads that died, added to the running thread's own. */
  private carried = { published: 0, dropped: 0, requests: 0, restarts: 0, lost: 0 };
  private lastFailure?: { text: string; at: number };
  /** Batches not yet acknowledged by the stream, oldest first (bounded by the backlog's bytes): handed
   *  to the next thread if this one dies. The last hello likewise. */
  private unacked: Array<Extract<MainToLink, { type: 'events' }>> = [];
  private unackedBytes = 0;
  private hello?: string;
  private lines: string[] = [];
  /** Bytes in `lines` (UTF-16 units × 3 bounds the UTF-8 size without encoding). */
  private pendingBytes = 0;
  /** Batches handed over so far (from 1 for each agent start): each is one body, Nats-Msg-Id
   *  <host>.<start>.<seq>. */
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private last: FleetLinkStatus = { state: 'connecting', backlogEvents: 0, backlogBytes: 0, published: 0, dropped: 0, requests: 0 };
  private responder?: FleetResponder;
  /** Events the main thread could not encode (a bug elsewhere): skipped, counted. */
  private unencodable = 0;
  private stopped?: Promise<void>;

  constructor(private readonly options: FleetLinkOptions) {
    this.spawn();
    this.watchdog = setInterval(() => this.checkSilence(), 1_000);
    this.watchdog.unref();
  }

  /** A thread silent for SILENT_MS is ended: its exit then starts the next, as for any death. */
  private checkSilence(): void {
    const worker = this.worker;
    if (!worker || this.stopped || Date.now() - this.lastHeard < SILENT_MS) return;
    this.silentFor = Date.now() - this.lastHeard;
    this.lastHeard = Date.now(); // ended once, not every second while it goes
    void worker.terminate().catch(() => undefined);
  }

  private get backlogBytes(): number {
    return this.options.backlogBytes ?? DEFAULT_BACKLOG_BYTES;
  }

  /** Starts a link thread and hands it what came while none ran. */
  private spawn(): void {
    this.restartTimer = undefined;
    this.last = { ...this.last, state: 'connecting' };
    const { log: _l, onRules: _a, onRule: _b, restartStableMs: _s, ...rest } = this.options;
    const data: LinkWorkerData = { ...rest, backlogBytes: this.backlogBytes, thread: this.threads++ };
    this.threadStarted = Date.now();
    let worker: Worker;
    try {
      worker = new Worker(new URL('./link-worker.js', import.meta.url), { workerData: data });
    } catch (error) {
      // No thread could be made (out of memory, too many threads): tried again like a thread that died.
      this.died(undefined, `could not start: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.worker = worker;
    this.lastHeard = Date.now();
    this.silentFor = undefined;
    worker.unref();
    let error: Error | undefined;
    worker.on('message', (m: LinkToMain) => {
      if (this.worker !== worker) return;
      this.lastHeard = Date.now();
      this.receive(m);
    });
    worker.on('error', (e) => (error = e));
    worker.on('exit', (code) => {
      const silent = this.worker === worker ? this.silentFor : undefined;
      this.died(worker, error ? `${error.name}: ${error.message}` : silent !== undefined ? `silent for ${Math.round(silent / 1000)} s: ended` : `exited with code ${code}`);
    });
    if (this.hello !== undefined) worker.postMessage({ type: 'hello', hello: this.hello } satisfies MainToLink);
    for (const m of this.unacked) worker.postMessage(m);
  }

  /** A link thread ended: when not stopping, its counters are kept and the next starts after a pause. */
  private died(worker: Worker | undefined, why: string): void {
    if (worker && this.worker !== worker) return;
    this.worker = undefined;
    const last = this.last;
    this.carried.published += last.published;
    this.carried.dropped += last.dropped;
    this.carried.requests += last.requests;
    this.last = { state: 'closed', backlogEvents: 0, backlogBytes: 0, published: 0, dropped: 0, requests: 0, ...(last.announced ? { announced: last.announced } : {}) };
    if (this.stopped) return;
    const ranMs = Date.now() - this.threadStarted;
    if (ranMs >= (this.options.restartStableMs ?? RESTART_STABLE_MS)) this.failures = 0;
    const delay = restartDelay(this.failures++);
    this.carried.restarts++;
    this.lastFailure = { text: why, at: Date.now() };
    this.last = { ...this.last, state: 'restarting' };
    this.restartAt = Date.now() + delay;
    const unsent = this.unacked.reduce((n, m) => n + m.count, 0);
    this.options.log(`NATS link thread died (${why}) after ${Math.round(ranMs / 1000)} s; starting it again in ${delay / 1000} s (restart ${this.carried.restarts}); ${unsent} events not yet published wait for it; the agent keeps deciding locally`);
    this.restartTimer = setTimeout(() => {
      this.restartAt = undefined;
      this.spawn();
    }, delay);
    this.restartTimer.unref();
  }

  /** Requests are answered once the agent can handle them. */
  attach(responder: FleetResponder): void {
    this.responder = responder;
  }

  observe(event: AgentEvent): void {
    this.responder?.observe(event);
    let line: string;
    try {
      line = encodeLines(event);
    } catch {
      this.unencodable++;
      return;
    }
    // A batch stays one body under MAX_BODY_BYTES: it is handed over before this line would pass it.
    if (this.pendingBytes + line.length * 3 > MAX_BODY_BYTES) this.flush();
    this.lines.push(line);
    this.pendingBytes += line.length * 3;
    if (event.type === 'flow' && event.flow.pending) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
  }

  /** The hello announced in the hosts bucket (sent again whenever it may have changed). */
  announce(hello: HelloMessage): void {
    this.hello = JSON.stringify(hello);
    this.post({ type: 'hello', hello: this.hello });
  }

  get status(): FleetLinkStatus {
    const c = this.carried;
    const s: FleetLinkStatus = {
      ...this.last,
      published: this.last.published + c.published,
      dropped: this.last.dropped + c.dropped,
      requests: this.last.requests + c.requests,
      // While no thread runs, the backlog is what is kept here for the next one.
      ...(this.worker ? {} : { backlogEvents: this.unacked.reduce((n, m) => n + m.count, 0), backlogBytes: this.unackedBytes }),
    };
    if (c.restarts > 0) s.restarts = c.restarts;
    if (c.lost > 0) s.lost = c.lost;
    if (this.lastFailure) {
      s.lastFailure = this.lastFailure.text;
      s.lastFailureAt = this.lastFailure.at;
    }
    if (this.restartAt !== undefined) s.restartAt = this.restartAt;
    const problems = [this.last.problem, this.unencodable > 0 ? `${this.unencodable} events could not be encoded` : undefined].filter((p) => p !== undefined);
    if (problems.length > 0) s.problem = problems.join('; ');
    return s;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return;
    const count = this.lines.length;
    const lines = this.lines.join('');
    this.lines = [];
    this.pendingBytes = 0;
    this.post({ type: 'events', lines, count, seq: ++this.seq });
  }

  /** Hands over what is batched now, and names the last batch: `<agent start ms>.<seq>` for a snapshot
   *  reply's Flowtop-Last-Batch header, undefined when none was queued yet. */
  lastBatch(): string | undefined {
    this.flush();
    return this.seq > 0 ? `${this.options.started}.${this.seq}` : undefined;
  }

  private post(m: MainToLink): void {
    if (this.stopped) return;
    if (m.type === 'events') this.keep(m);
    // Without a thread: events wait in `unacked`; a reply for a thread that died is dropped (its
    // request died with it, and the client asks again).
    if (!this.worker) return;
    try {
      this.worker.postMessage(m);
    } catch {
      // the thread is ending: said by its exit handler
    }
  }

  /** Keeps a batch until the stream acknowledges it. Past the backlog's bound the oldest are let go:
   *  a running thread has them (and drops them itself, counted, when its own backlog is full); with no
   *  thread running they are lost, counted. */
  private keep(m: Extract<MainToLink, { type: 'events' }>): void {
    this.unacked.push(m);
    this.unackedBytes += m.lines.length * 3;
    while (this.unackedBytes > this.backlogBytes && this.unacked.length > 1) {
      const old = this.unacked.shift()!;
      this.unackedBytes -= old.lines.length * 3;
      if (!this.worker) this.carried.lost += old.count;
    }
  }

  /** Batches up to `seq` are in the stream: no longer kept. */
  private acknowledged(seq: number): void {
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= seq) this.unackedBytes -= this.unacked.shift()!.lines.length * 3;
  }

  private receive(m: LinkToMain): void {
    switch (m.type) {
      case 'status':
        this.last = m.status;
        this.acknowledged(m.publishedSeq);
        return;
      case 'log':
        this.options.log(m.message);
        return;
      case 'request': {
        const responder = this.responder;
        if (!responder) {
          this.post({ type: 'reply', id: m.id, body: '{"type":"error","code":"internal","message":"the agent is still starting"}\n' });
          return;
        }
        // Request ids are the thread's own: a reply is for the thread that asked, not one started since.
        const asker = this.worker;
        void responder.answer(m).then(({ body, headers }) => {
          if (this.worker === asker) this.post({ type: 'reply', id: m.id, body, ...(headers ? { headers } : {}) });
        });
        return;
      }
      case 'fleet-rules':
        this.options.onRules?.(m.entries);
        return;
      case 'fleet-rule':
        this.options.onRule?.(m.key, m.value);
        return;
      case 'stopped':
        return;
    }
  }

  /** Hands over what is batched, gives the link a moment to publish it, then ends the thread. */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.flush();
    this.post({ type: 'stop' });
    if (this.restartTimer) clearTimeout(this.restartTimer);
    clearInterval(this.watchdog);
    const worker = this.worker;
    this.stopped = !worker
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(() => void worker.terminate().then(() => resolve(), () => resolve()), 2500);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        });
    return this.stopped;
  }
}
