// One fleet host as a flow source: what its agent announces in the hosts bucket (its hello, whether
// it is still there), its events from the stream, its snapshot, and requests to it by request/reply.
//
// Snapshot and replay: when the client first sees an agent (or the agent restarted), it asks for a
// snapshot. Batches of that host arriving meanwhile are held. The reply (a hello, every live or
// pending flow, the rules) replaces what the host sent before, and names the last batch the agent
// had queued when it took it (header Flowtop-Last-Batch): held and later batches up to that one are
// dropped, the rest applied. So a flow that ended before the snapshot is never shown again, and
// none is shown twice, whatever the order in which reply and stream arrive (docs/fleet.md).
import { BehaviorSubject, Subject } from 'rxjs';
import { encodeMessage, MessageTooLongError } from '../protocol/codec.js';
import type { Capability, ClientMessage, ExtensionMessage, HelloMessage } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from '../source/types.js';
import { decodeBody } from './body.js';
import { LAST_BATCH_HEADER, type FleetRequest, type HostAnnouncement } from './wire.js';

/** A batch's place in its host's sequence: `<agent start ms>.<batch seq>`. */
export interface BatchId {
  start: number;
  seq: number;
}

export interface EventBatch {
  id?: BatchId;
  messages: readonly ExtensionMessage[];
  problems: readonly string[];
}

export interface Reply {
  body: Uint8Array;
  header(name: string): string | undefined;
}

/** The NATS side, as the host source needs it: one request, its reply or words for why none. */
export interface HostLink {
  request(host: string, body: Uint8Array, timeoutMs: number): Promise<Reply>;
  /** Where the fleet is (for messages), e.g. nats://127.0.0.1:4222. */
  readonly where: string;
}

export interface RequestPolicy {
  /** Wait for one reply. */
  timeoutMs: number;
  /** Tries in all (the same ref each time: the agent applies a verdict once per flow id). */
  tries: number;
  /** Pause before a retry after an immediate failure (no responders). */
  retryPauseMs: number;
}

export const DEFAULT_REQUEST_POLICY: RequestPolicy = { timeoutMs: 2_000, tries: 3, retryPauseMs: 500 };

const CAPABILITY_FOR: Partial<Record<ClientMessage['type'], Capability>> = {
  verdict: 'verdicts',
  'rule-add': 'rules',
  'rule-remove': 'rules',
  'rules-list': 'rules',
};

const WHAT: Record<FleetRequest['type'], string> = {
  verdict: 'the verdict',
  'rule-add': 'the new rule',
  'rule-remove': 'the rule removal',
  'rules-list': 'the rules request',
  snapshot: 'the snapshot request',
};

export function parseBatchId(text: string | undefined): BatchId | undefined {
  const m = text ? /^(\d{1,16})\.(\d{1,16})$/.exec(text) : null;
  return m ? { start: Number(m[1]), seq: Number(m[2]) } : undefined;
}

/** Whether `a` comes at or before `b` in one host's sequence (an older agent start comes first). */
function atOrBefore(a: BatchId, b: BatchId): boolean {
  return a.start < b.start || (a.start === b.start && a.seq <= b.seq);
}

let refCounter = 0;

export class HostSource implements FlowSource {
  readonly fleet: { role: 'host'; label: string };
  private readonly events = new Subject<SourceEvent>();
  private readonly status = new BehaviorSubject<ConnectionStatus>({ state: 'connecting', attempt: 1 });
  readonly events$ = this.events.asObservable();
  readonly status$ = this.status.asObservable();
  private hello?: HelloMessage;
  private started?: number;
  private gone = true;
  /** Batches held while a snapshot is asked for. */
  private held?: EventBatch[];
  /** Batches at or before this one are in the applied snapshot already. */
  private floor?: BatchId;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly link: HostLink,
    private readonly policy: RequestPolicy = DEFAULT_REQUEST_POLICY,
  ) {
    this.fleet = { role: 'host', label: link.where };
  }

  /** The host's entry in the hosts bucket (written `at`, the server's time). A new agent start asks
   *  for a snapshot. */
  announce(entry: HostAnnouncement): void {
    if (this.closed) return;
    const restarted = this.started !== entry.started;
    this.hello = entry.hello as HelloMessage;
    this.started = entry.started;
    const wasGone = this.gone;
    this.gone = false;
    if (wasGone || restarted || this.status.value.state !== 'connected') this.status.next({ state: 'connected', hello: this.hello });
    if (restarted || wasGone) void this.askSnapshot();
  }

  /** No fresh announcement for too long, or the entry was deleted. */
  markGone(reason: string): void {
    if (this.closed || this.gone) return;
    this.gone = true;
    this.status.next({ state: 'disconnected', reason });
  }

  isGone(): boolean {
    return this.gone;
  }

  /** A batch from the events stream, in stream order. */
  batch(batch: EventBatch): void {
    if (this.closed) return;
    if (this.held) {
      this.held.push(batch);
      return;
    }
    this.apply(batch);
  }

  private apply(batch: EventBatch): void {
    if (batch.id && this.floor && atOrBefore(batch.id, this.floor)) return;
    for (const problem of batch.problems) this.local(`skipped a bad line from ${this.id}: ${problem}`, 'bad-message');
    for (const message of batch.messages) this.emit(message);
  }

  private emit(message: ExtensionMessage): void {
    this.events.next({ source: this.id, message });
  }

  private local(text: string, code: 'bad-message' | 'internal' = 'internal'): void {
    this.events.next({ source: this.id, local: true, message: { type: 'error', code, message: text } });
  }

  private async askSnapshot(): Promise<void> {
    if (this.held) return; // one at a time; the one under way answers for now
    this.held = [];
    const ref = `snapshot-${process.pid}-${++refCounter}`;
    const outcome = await this.requestWithRetries({ type: 'snapshot', ref });
    const held = this.held;
    this.held = undefined;
    if (this.closed) return;
    if ('error' in outcome) {
      this.local(`${outcome.error}; flows ${this.id} holds now show only as they change`);
      for (const b of held) this.apply(b);
      return;
    }
    const { messages, problems } = decodeBody(outcome.reply.body);
    const first = messages[0];
    if (first?.type !== 'hello') {
      this.local(`${this.id} answered the snapshot request without a hello first: ignored`, 'bad-message');
      for (const b of held) this.apply(b);
      return;
    }
    for (const problem of problems) this.local(`skipped a bad line in ${this.id}'s snapshot: ${problem}`, 'bad-message');
    this.hello = first;
    for (const m of messages) this.emit(m);
    const last = parseBatchId(outcome.reply.header(LAST_BATCH_HEADER));
    if (last) this.floor = last;
    else if (this.started !== undefined) this.floor = { start: this.started, seq: 0 };
    for (const b of held) this.apply(b);
  }

  private async requestWithRetries(request: FleetRequest): Promise<{ reply: Reply } | { error: string }> {
    let body: Uint8Array;
    try {
      body = new TextEncoder().encode(encodeMessage(request as ClientMessage));
    } catch (error) {
      return { error: error instanceof MessageTooLongError ? error.message : String(error) };
    }
    let why = '';
    for (let attempt = 1; attempt <= this.policy.tries; attempt++) {
      if (this.closed) return { error: 'closed' };
      const began = Date.now();
      try {
        return { reply: await this.link.request(this.id, body, this.policy.timeoutMs) };
      } catch (error) {
        why = error instanceof Error ? error.message : String(error);
        // A refusal by the server's permissions will not change with a retry.
        if (/permission/i.test(why)) break;
        const waited = Date.now() - began;
        if (attempt < this.policy.tries && waited < this.policy.retryPauseMs) await new Promise((r) => setTimeout(r, this.policy.retryPauseMs - waited));
      }
    }
    return { error: `${this.id} did not answer ${WHAT[request.type]} (${why}); check that its agent runs with --nats ${this.link.where}` };
  }

  send(message: ClientMessage): SendResult {
    if (this.closed) return { ok: false, error: 'this source is closed' };
    if (message.type === 'subscribe') return { ok: true };
    if (!this.hello) return { ok: false, error: `${this.id} has not announced itself yet` };
    if (this.gone) return { ok: false, error: `${this.id} is gone (its agent stopped announcing itself); nothing was sent` };
    const needed = CAPABILITY_FOR[message.type];
    if (needed && !this.hello.capabilities.includes(needed)) return { ok: false, error: `${this.id}'s agent does not support "${message.type}" (no "${needed}" capability)` };
    // A ref of our own when the message has none: every retry carries it, so the agent can tell a
    // retry from a new request and answer it the same way.
    const request = message.ref ? message : { ...message, ref: `c-${process.pid}-${++refCounter}` };
    try {
      encodeMessage(request);
    } catch (error) {
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    void this.requestWithRetries(request).then((outcome) => {
      if (this.closed) return;
      if ('error' in outcome) {
        const tail = request.type === 'verdict' ? ': the flow gets its default at its deadline' : '';
        this.events.next({ source: this.id, local: true, reply: true, message: { type: 'error', code: 'internal', message: `${outcome.error}${tail}` } });
        return;
      }
      const { messages, problems } = decodeBody(outcome.reply.body);
      for (const problem of problems) this.local(`skipped a bad line in ${this.id}'s answer: ${problem}`, 'bad-message');
      for (const message of messages) this.events.next({ source: this.id, message, reply: true });
    });
    return { ok: true };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.status.next({ state: 'disconnected', reason: 'closed' });
    this.events.complete();
    this.status.complete();
  }
}
