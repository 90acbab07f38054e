// A small stand-in for an agent that speaks the fleet wire exactly as docs/fleet.md says, for the
// client's protocol-level tests: it creates the stream and the buckets, announces itself in the hosts
// bucket, publishes NDJSON batches with Nats-Msg-Id `<host>.<start>.<seq>`, and answers requests on
// its rpc subject (snapshot with the Flowtop-Last-Batch header; a verdict at most once per flow id).
import { connect, headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { decodeClientMessage, encodeMessage } from '../../../src/protocol/codec.js';
import type { ClientMessage, ExtensionMessage, FlowRecord, HelloMessage, Rule } from '../../../src/protocol/messages.js';
import { LAST_BATCH_HEADER, fleetNames } from '../../../src/fleet/wire.js';

export function agentHello(host: string): HelloMessage {
  return {
    type: 'hello',
    protocol: 1,
    extension: { name: 'flowtop-agent', version: 'test' },
    platform: 'linux',
    host,
    capabilities: ['verdicts', 'end-flows', 'rules', 'bytes'],
    tokenKind: 'linux-pidfd-v1',
    mode: { failOpen: false, defaultAction: 'block', timeoutMs: 30_000, history: '/var/lib/flowtop/history.db' },
  };
}

export function flowOf(id: string, over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    id,
    time: Date.now(),
    direction: 'outbound',
    protocol: 'tcp',
    family: 'ipv4',
    local: { address: '10.0.0.2', port: 40000 },
    remote: { address: '93.184.216.34', port: 443 },
    token: 'khAAAAAAAABA4gEAAAAAANsDAAAAAAAA',
    pid: 4242,
    uid: 1000,
    identity: { kind: 'package', package: 'curl', value: '/usr/bin/curl', path: '/usr/bin/curl' },
    ...over,
  };
}

export interface TestAgentOptions {
  url: string | string[];
  /** Stream and bucket replicas (a cluster's nodes). */
  replicas?: number;
  host: string;
  prefix?: string;
  /** Answer requests (default true). */
  answer?: boolean;
  /** Delay before answering a snapshot (to let stream batches overtake the reply). */
  snapshotDelayMs?: number;
  /** Apply the first verdict but lose its reply, as a reply lost on the way would be. */
  loseFirstVerdictReply?: boolean;
}

export class TestAgent {
  readonly started = Date.now();
  readonly flows = new Map<string, FlowRecord>();
  readonly rules: Rule[] = [];
  /** Every request received, with the user token of its subject. */
  readonly requests: Array<{ user: string; message: ClientMessage | { type: 'snapshot'; ref?: string } }> = [];
  /** Verdicts applied (at most one per flow id). */
  readonly applied = new Map<string, ExtensionMessage[]>();
  private seq = 0;
  private sub?: Subscription;
  private hosts?: KV;
  private constructor(readonly nc: NatsConnection, readonly options: TestAgentOptions) {}

  static async start(options: TestAgentOptions): Promise<TestAgent> {
    const nc = await connect({ servers: options.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    const agent = new TestAgent(nc, options);
    try {
      await agent.setup();
    } catch (error) {
      await nc.close();
      throw error;
    }
    return agent;
  }

  get names() {
    return fleetNames(this.options.prefix);
  }

  private async setup(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    try {
      await jsm.streams.info(this.names.stream);
    } catch {
      await jsm.streams.add({ name: this.names.stream, subjects: [this.names.allEvents], max_age: 600 * 1e9, duplicate_window: 120 * 1e9, num_replicas: this.options.replicas ?? 1 });
    }
    const kvm = new Kvm(this.nc);
    this.hosts = await kvm.create(this.names.hostsBucket, { history: 1, replicas: this.options.replicas ?? 1 });
    await kvm.create(this.names.rulesBucket, { history: 5, replicas: this.options.replicas ?? 1 });
    if (this.options.answer !== false) this.sub = this.nc.subscribe(this.names.requests(this.options.host), { callback: (_e, msg) => void this.onRequest(msg.subject, msg.data, (body, h) => msg.respond(body, h ? { headers: h } : undefined)) });
    await this.nc.flush();
  }

  async announce(seen = Date.now()): Promise<void> {
    await this.hosts!.put(this.options.host, JSON.stringify({ hello: agentHello(this.options.host), started: this.started, seen }));
  }

  async goodbye(): Promise<void> {
    await this.hosts!.delete(this.options.host);
  }

  /** Publishes one batch (keeping the agent's own view of its flows), returning its batch seq. */
  async publish(messages: ExtensionMessage[], raw?: string): Promise<number> {
    for (const m of messages) this.track(m);
    const seq = ++this.seq;
    const h = headers();
    h.set('Nats-Msg-Id', `${this.options.host}.${this.started}.${seq}`);
    const body = raw ?? messages.map((m) => encodeMessage(m)).join('');
    await jetstream(this.nc).publish(this.names.events(this.options.host), body, { headers: h });
    return seq;
  }

  private track(m: ExtensionMessage): void {
    if (m.type === 'flow') this.flows.set(m.flow.id, { ...m.flow });
    if (m.type === 'end') this.flows.delete(m.id);
    if (m.type === 'verdict') {
      const f = this.flows.get(m.id);
      if (f) {
        delete f.pending;
        f.verdict = m.verdict;
        if (m.verdict.action === 'block') this.flows.delete(m.id);
      }
    }
  }

  private async onRequest(subject: string, data: Uint8Array, respond: (body: string, h?: ReturnType<typeof headers>) => void): Promise<void> {
    const user = subject.split('.').at(-1)!;
    const text = new TextDecoder().decode(data).trim();
    const parsed = JSON.parse(text) as { type?: string; ref?: string };
    if (parsed.type === 'snapshot') {
      this.requests.push({ user, message: { type: 'snapshot', ...(parsed.ref ? { ref: parsed.ref } : {}) } });
      const last = this.seq;
      const lines: ExtensionMessage[] = [agentHello(this.options.host), ...[...this.flows.values()].map((flow): ExtensionMessage => ({ type: 'flow', flow })), { type: 'rules', rules: this.rules }];
      const body = lines.map((m) => encodeMessage(m)).join('');
      if (this.options.snapshotDelayMs) await new Promise((r) => setTimeout(r, this.options.snapshotDelayMs));
      const h = headers();
      if (last > 0) h.set(LAST_BATCH_HEADER, `${this.started}.${last}`);
      respond(body, h);
      return;
    }
    const decoded = decodeClientMessage(text);
    if (!decoded.ok) return respond(encodeMessage({ type: 'error', code: decoded.error.code, message: decoded.error.message }));
    const m = decoded.message;
    this.requests.push({ user, message: m });
    if (m.type === 'verdict') {
      const again = this.applied.get(m.id);
      if (again) return respond(again.map((x) => encodeMessage(x)).join(''));
      const f = this.flows.get(m.id);
      if (!f?.pending) return respond(encodeMessage({ type: 'error', code: f ? 'not-pending' : 'unknown-flow', message: `flow ${m.id} is not waiting`, ...(m.ref ? { ref: m.ref } : {}) }));
      const verdict: ExtensionMessage = { type: 'verdict', id: m.id, time: Date.now(), verdict: { action: m.action, by: 'user' } };
      this.applied.set(m.id, [verdict]);
      this.track(verdict);
      await this.publish([verdict]);
      if (this.options.loseFirstVerdictReply && this.applied.size === 1) return;
      return respond(encodeMessage(verdict));
    }
    if (m.type === 'rules-list') return respond(encodeMessage({ type: 'rules', rules: this.rules, ...(m.ref ? { ref: m.ref } : {}) }));
    respond(encodeMessage({ type: 'error', code: 'not-supported', message: `${m.type} is not supported by the test agent`, ...(m.ref ? { ref: m.ref } : {}) }));
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    await this.nc.close();
  }
}
