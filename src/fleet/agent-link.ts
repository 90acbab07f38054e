// The agent's side of the fleet on its main thread: an observer that batches the events the agent sends
// its clients (a pending flow leaves at once, the rest within BATCH_MS) and hands them, already
// encoded, to the NATS link thread (link-worker.ts); requests that thread receives, answered by the
// responder; fleet rule changes, handed to whoever applies them. Nothing here waits on NATS.
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

export interface FleetLinkOptions extends Omit<LinkWorkerData, 'backlogBytes'> {
  backlogBytes?: number;
  log(line: string): void;
  /** The whole set of fleet rules for this host (after each connect), then each change. */
  onRules?(entries: Array<{ key: string; value: string }>): void;
  onRule?(key: string, value: string | undefined): void;
}

export class FleetLink implements AgentObserver {
  private readonly worker: Worker;
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
    const { log: _l, onRules: _a, onRule: _b, ...rest } = options;
    const data: LinkWorkerData = { ...rest, backlogBytes: options.backlogBytes ?? DEFAULT_BACKLOG_BYTES };
    this.worker = new Worker(new URL('./link-worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.worker.on('message', (m: LinkToMain) => this.receive(m));
    this.worker.on('error', (error) => options.log(`NATS link thread failed: ${error.message} (the agent keeps deciding locally)`));
    this.worker.on('exit', (code) => {
      if (!this.stopped) options.log(`NATS link thread exited (${code}); the agent keeps deciding locally`);
      this.last = { ...this.last, state: 'closed' };
    });
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
    this.post({ type: 'hello', hello: JSON.stringify(hello) });
  }

  get status(): FleetLinkStatus {
    return this.unencodable > 0 ? { ...this.last, problem: `${this.last.problem ? `${this.last.problem}; ` : ''}${this.unencodable} events could not be encoded` } : this.last;
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
    try {
      this.worker.postMessage(m);
    } catch {
      // the thread is gone: said by its exit handler
    }
  }

  private receive(m: LinkToMain): void {
    switch (m.type) {
      case 'status':
        this.last = m.status;
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
        void responder.answer(m).then(({ body, headers }) => this.post({ type: 'reply', id: m.id, body, ...(headers ? { headers } : {}) }));
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
    this.stopped = new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate().then(() => resolve(), () => resolve()), 2500);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.stopped;
  }
}
