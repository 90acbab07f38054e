// Requests that reach the agent over NATS (docs/fleet.md): decoded with the protocol's own decoder and
// handled by the same handlers as the Unix socket's clients, through a client object whose replies are
// gathered into the reply body. What the handlers tell every client instead of the asker (a verdict, a
// rule change) is picked out of the agent's events by flow id or by the request's ref.
// A verdict is applied at most once per flow id and action: a retry gets the first answer again.
import { decodeClientMessage, encodeLines } from '../protocol/codec.js';
import type { ErrorCode, ExtensionMessage } from '../protocol/messages.js';
import { LIMITS } from '../protocol/messages.js';
import type { RequestMessage, ServerClient } from '../protocol/server.js';
import type { AgentEvent } from '../agent/observers.js';
import { LAST_BATCH_HEADER, MAX_BODY_BYTES, USER_NAME_PATTERN } from './wire.js';

/** How long a request may take before it is answered with what is known (a remembered verdict waits
 *  on the rules file). */
const REQUEST_TIMEOUT_MS = 5_000;
/** Verdict answers kept for retries, and for how long. */
const ANSWERS_KEPT = 10_000;
const ANSWER_TTL_MS = 10 * 60_000;

export interface ResponderDeps {
  /** The socket's request handlers (verdict, rule-add, rule-remove, rules-list). */
  handle(client: ServerClient, msg: RequestMessage): void;
  /** hello, every pending and live flow, byte counters, rules: what a subscriber's snapshot holds. */
  snapshot(): ExtensionMessage[];
  /** Hands over the events batched so far and names the last batch (`<start ms>.<seq>`), if any. */
  lastBatch(): string | undefined;
  now(): number;
}

export interface IncomingRequest {
  user: string;
  server: string;
  body: string;
}

interface Waiter {
  ref: string;
  flowId?: string;
  out: ExtensionMessage[];
  /** Whether `m` completes the request. */
  done(m: ExtensionMessage): boolean;
  finish(): void;
}

export class FleetResponder {
  private nextRef = 1;
  private readonly waiters = new Set<Waiter>();
  /** Verdict answers by flow id and action (their lines without the request's ref). */
  private readonly answers = new Map<string, { at: number; answer: Promise<ExtensionMessage[]> }>();

  constructor(private readonly deps: ResponderDeps) {}

  /** Every event the agent sends: a verdict or rule change a request is waiting on. */
  observe(event: AgentEvent): void {
    if (this.waiters.size === 0) return;
    for (const w of [...this.waiters]) {
      const mine = (event.type === 'verdict' && w.flowId === event.id) || (event.type === 'rule-changed' && event.ref === w.ref);
      if (!mine) continue;
      w.out.push(event.type === 'verdict' ? { ...event, verdict: { ...event.verdict } } : { ...event, rule: { ...event.rule } });
      if (w.done(event)) w.finish();
    }
  }

  /** The reply body (NDJSON) for one request, and its headers (a snapshot's Flowtop-Last-Batch);
   *  never throws. */
  async answer(request: IncomingRequest): Promise<{ body: string; headers?: Record<string, string> }> {
    const headers: Record<string, string> = {};
    try {
      const body = encodeAll(await this.answerMessages(request, headers));
      return Object.keys(headers).length > 0 ? { body, headers } : { body };
    } catch (error) {
      return { body: encodeAll([errorMessage('internal', `the request failed: ${error instanceof Error ? error.message : String(error)}`)]) };
    }
  }

  private async answerMessages(request: IncomingRequest, headers: Record<string, string>): Promise<ExtensionMessage[]> {
    const lines = request.body.split('\n').filter((l) => l.trim().length > 0);
    if (lines.length !== 1) return [errorMessage('bad-message', `a request body is one protocol message on one line (got ${lines.length})`)];
    if (!USER_NAME_PATTERN.test(request.user)) return [errorMessage('not-authorised', `the request subject's last token "${request.user.slice(0, 80)}" is not a user name`)];
    const line = lines[0]!;
    const snapshot = readSnapshotRequest(line);
    if (snapshot) {
      if ('error' in snapshot) return [snapshot.error];
      // Everything told before the snapshot is in a batch up to this one; everything after, later.
      const last = this.deps.lastBatch();
      if (last) headers[LAST_BATCH_HEADER] = last;
      return this.snapshotReply(snapshot.ref);
    }
    const decoded = decodeClientMessage(line);
    if (!decoded.ok) return [errorMessage(decoded.error.code, decoded.error.message, decoded.error.ref)];
    const msg = decoded.message;
    if (msg.type === 'subscribe') return [errorMessage('not-supported', 'subscribe is not sent over NATS: the events stream is the subscription (docs/fleet.md)', msg.ref)];
    const decider = `nats:${request.user}@${request.server}`;
    if (msg.type !== 'verdict') return withRef(await this.run(msg, decider), msg.ref);
    // At most once per flow id: a retry (same flow, same action) is answered with the first answer.
    const key = `${msg.id}\u0000${msg.action}`;
    this.forgetOldAnswers();
    let kept = this.answers.get(key);
    if (!kept) {
      kept = { at: this.deps.now(), answer: this.run(msg, decider) };
      this.answers.set(key, kept);
    }
    return withRef(await kept.answer, msg.ref);
  }

  /** Runs one request through the socket's handlers with a gathering client. */
  private run(msg: RequestMessage, decider: string): Promise<ExtensionMessage[]> {
    const ref = `nats-${this.nextRef++}`;
    return new Promise((resolve) => {
      const out: ExtensionMessage[] = [];
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        ref,
        ...(msg.type === 'verdict' ? { flowId: msg.id } : {}),
        out,
        done: (m) => {
          if (m.type === 'error') return true;
          if (m.type === 'rule-changed') return true;
          if (m.type === 'rules') return !m.continues;
          // A verdict completes a `once` verdict; a remembered one waits for its rule too.
          return m.type === 'verdict' && msg.type === 'verdict' && msg.remember === 'once';
        },
        finish: () => {
          if (finished) return;
          finished = true;
          if (timer) clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(out);
        },
      };
      const client: ServerClient & { decider: string } = {
        id: `nats-${ref}`,
        subscribed: false,
        decider,
        send: (m) => {
          if (finished) return false;
          out.push(m);
          if (waiter.done(m)) waiter.finish();
          return true;
        },
        reply: (code: ErrorCode, message: string, r?: string) => client.send(errorMessage(code, message, r)),
        close: () => waiter.finish(),
      };
      this.waiters.add(waiter);
      this.deps.handle(client, { ...msg, ref } as RequestMessage);
      if (finished) return;
      timer = setTimeout(() => {
        if (out.length === 0) out.push(errorMessage('internal', `no answer within ${REQUEST_TIMEOUT_MS} ms`));
        waiter.finish();
      }, REQUEST_TIMEOUT_MS);
      timer.unref?.();
    });
  }

  /** hello, then flows (pending first), byte counters and rules, within MAX_BODY_BYTES: past it the
   *  newest flows that fit and a last line saying it was cut. */
  private snapshotReply(ref: string | undefined): ExtensionMessage[] {
    const all = this.deps.snapshot();
    const encoded = all.map((m) => ({ m, bytes: Buffer.byteLength(safeEncode(m)) }));
    const total = encoded.reduce((n, e) => n + e.bytes, 0);
    if (total <= MAX_BODY_BYTES) return all;
    const room = MAX_BODY_BYTES - 512;
    const fixed = encoded.filter((e) => e.m.type !== 'flow');
    let used = fixed.reduce((n, e) => n + e.bytes, 0);
    const flows = encoded.filter((e) => e.m.type === 'flow');
    const pending = flows.filter((e) => e.m.type === 'flow' && e.m.flow.pending);
    const live = flows.filter((e) => e.m.type === 'flow' && !e.m.flow.pending).reverse();
    const kept: ExtensionMessage[] = [];
    let cut = 0;
    for (const e of [...pending, ...live]) {
      if (used + e.bytes > room) {
        cut++;
        continue;
      }
      used += e.bytes;
      kept.push(e.m);
    }
    const [hello, ...rest] = fixed.map((e) => e.m);
    return [
      ...(hello ? [hello] : []), ...kept, ...rest,
      errorMessage('internal', `snapshot truncated: ${cut} older live flows left out (over ${MAX_BODY_BYTES} bytes)`, ref),
    ];
  }

  private forgetOldAnswers(): void {
    const now = this.deps.now();
    for (const [key, kept] of this.answers) {
      if (this.answers.size <= ANSWERS_KEPT && now - kept.at < ANSWER_TTL_MS) break;
      this.answers.delete(key);
    }
  }
}

function readSnapshotRequest(line: string): { ref?: string } | { error: ExtensionMessage } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined; // the protocol's decoder says what is wrong
  }
  if (typeof value !== 'object' || value === null || (value as { type?: unknown }).type !== 'snapshot') return undefined;
  const ref = (value as { ref?: unknown }).ref;
  if (ref !== undefined && (typeof ref !== 'string' || ref.length === 0 || ref.length > LIMITS.id)) {
    return { error: errorMessage('bad-message', `snapshot.ref must be a string of 1–${LIMITS.id} characters`) };
  }
  return typeof ref === 'string' ? { ref } : {};
}

/** The request's own ref on every reply line that answers it (the handlers saw an internal one). */
function withRef(messages: ExtensionMessage[], ref: string | undefined): ExtensionMessage[] {
  return messages.map((m) => {
    if (m.type !== 'error' && m.type !== 'rules' && m.type !== 'rule-changed') return m;
    const { ref: _, ...rest } = m;
    return (ref ? { ...rest, ref } : rest) as ExtensionMessage;
  });
}

function errorMessage(code: ErrorCode, message: string, ref?: string): ExtensionMessage {
  return ref ? { type: 'error', code, message, ref } : { type: 'error', code, message };
}

function safeEncode(m: ExtensionMessage): string {
  try {
    return encodeLines(m);
  } catch {
    return '';
  }
}

function encodeAll(messages: ExtensionMessage[]): string {
  return messages.map(safeEncode).join('');
}
