// Simulated fleet agents for the bench and for walking the client by hand: each speaks the fleet wire
// as docs/fleet.md says (its own NATS connection, an entry in the hosts bucket refreshed every
// interval, NDJSON batches on its events subject with Nats-Msg-Id `<host>.<start>.<seq>`, answers on
// its rpc subject: a snapshot with Flowtop-Last-Batch, a verdict once per flow id), and generates
// protocol v1 events (new flows, byte counters, ends) at a given rate. It is a generator, not the
// agent's own publisher: the events are made up, their shape is the protocol's.
import { connect, headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { decodeClientMessage, encodeMessage } from '../../src/protocol/codec.js';
import type { ExtensionMessage, FlowRecord, HelloMessage } from '../../src/protocol/messages.js';
import { LAST_BATCH_HEADER, fleetNames, type FleetNames } from '../../src/fleet/wire.js';

export function simHello(host: string): HelloMessage {
  return {
    type: 'hello', protocol: 1, extension: { name: 'flowtop-agent', version: 'sim' }, platform: 'linux', host,
    capabilities: ['verdicts', 'end-flows', 'rules', 'bytes'], tokenKind: 'linux-pidfd-v1',
    mode: { failOpen: false, defaultAction: 'block', timeoutMs: 30_000 },
  };
}

const PROGRAMS = [
  { package: 'curl', path: '/usr/bin/curl' },
  { package: 'openssh-client', path: '/usr/bin/ssh' },
  { package: 'nginx', path: '/usr/sbin/nginx' },
  { package: 'postgresql', path: '/usr/lib/postgresql/15/bin/postgres' },
  { package: 'python3', path: '/usr/bin/python3.11' },
];

/** Creates the stream and buckets if no agent has (as an agent does on connect). */
export async function prepareFleet(url: string, prefix?: string): Promise<void> {
  const nc = await connect({ servers: url });
  const names = fleetNames(prefix);
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(names.stream);
  } catch {
    await jsm.streams.add({ name: names.stream, subjects: [names.allEvents], max_age: 600 * 1e9, duplicate_window: 120 * 1e9 });
  }
  const kvm = new Kvm(nc);
  await kvm.create(names.hostsBucket, { history: 1 });
  await kvm.create(names.rulesBucket, { history: 5 });
  await nc.close();
}

export interface SimAgentOptions {
  url: string;
  host: string;
  prefix?: string;
  announceMs?: number;
}

export class SimAgent {
  readonly started = Date.now();
  readonly live = new Map<string, FlowRecord>();
  /** Verdict answers by flow id (a retry gets the first one). */
  readonly applied = new Map<string, string>();
  verdictRequests = 0;
  published = 0;
  private seq = 0;
  private next = 0;
  private sub?: Subscription;
  private announcer?: NodeJS.Timeout;
  private js!: JetStreamClient;
  private hosts!: KV;
  readonly names: FleetNames;
  private constructor(readonly nc: NatsConnection, readonly options: SimAgentOptions) {
    this.names = fleetNames(options.prefix);
  }

  static async start(options: SimAgentOptions): Promise<SimAgent> {
    const a = new SimAgent(await connect({ servers: options.url, name: `sim ${options.host}` }), options);
    a.js = jetstream(a.nc);
    a.hosts = await new Kvm(a.nc).open(a.names.hostsBucket);
    a.sub = a.nc.subscribe(a.names.requests(options.host), { callback: (_e, msg) => a.answer(msg.data, (body, h) => msg.respond(body, h ? { headers: h } : undefined)) });
    await a.announce();
    a.announcer = setInterval(() => void a.announce().catch(() => undefined), options.announceMs ?? 5_000);
    return a;
  }

  async announce(): Promise<void> {
    await this.hosts.put(this.options.host, JSON.stringify({ hello: simHello(this.options.host), started: this.started, seen: Date.now() }));
  }

  /** A new flow (its `time` is when it was published: the bench's latency starts there). */
  newFlow(over: Partial<FlowRecord> = {}): FlowRecord {
    const n = this.next++;
    const program = PROGRAMS[n % PROGRAMS.length]!;
    return {
      id: `f${n}`,
      time: Date.now(),
      direction: 'outbound',
      protocol: 'tcp',
      family: 'ipv4',
      local: { address: '10.0.0.2', port: 30000 + (n % 30000) },
      remote: { address: `198.51.${(n >> 8) & 255}.${n & 255}`, port: 443 },
      token: Buffer.from(`${this.options.host}:${n}`.padEnd(24, '.')).toString('base64'),
      pid: 1000 + (n % 500),
      uid: 1000,
      identity: { kind: 'package', package: program.package, value: program.path, path: program.path },
      ...over,
    };
  }

  /** `count` events as one batch: new flows, counters for live ones, and ends keeping ~200 live. */
  async tick(count: number): Promise<void> {
    const out: ExtensionMessage[] = [];
    const now = Date.now();
    while (out.length < count) {
      const r = out.length % 4;
      if (r === 0 || this.live.size < 50) {
        const f = this.newFlow();
        this.live.set(f.id, f);
        out.push({ type: 'flow', flow: f });
      } else if (r === 1 || r === 2) {
        const ids = [...this.live.keys()].slice(0, 20);
        out.push({ type: 'bytes', time: now, counters: ids.map((id, i) => ({ id, rx: (now % 100000) * (i + 1), tx: now % 5000 })) });
      } else {
        if (this.live.size > 200) {
          const id = this.live.keys().next().value!;
          if (!this.live.get(id)!.pending) {
            this.live.delete(id);
            out.push({ type: 'end', id, time: now });
            continue;
          }
        }
        const f = this.newFlow();
        this.live.set(f.id, f);
        out.push({ type: 'flow', flow: f });
      }
    }
    await this.publish(out);
  }

  async publish(messages: ExtensionMessage[]): Promise<void> {
    const seq = ++this.seq;
    const h = headers();
    h.set('Nats-Msg-Id', `${this.options.host}.${this.started}.${seq}`);
    this.published += messages.length;
    await this.js.publish(this.names.events(this.options.host), messages.map((m) => encodeMessage(m)).join(''), { headers: h });
  }

  private answer(data: Uint8Array, respond: (body: string, h?: ReturnType<typeof headers>) => void): void {
    const text = new TextDecoder().decode(data).trim();
    if (text.startsWith('{"type":"snapshot"')) {
      const h = headers();
      h.set(LAST_BATCH_HEADER, `${this.started}.${this.seq}`);
      const flows = [...this.live.values()].map((flow) => encodeMessage({ type: 'flow', flow }));
      respond(encodeMessage(simHello(this.options.host)) + flows.join('') + encodeMessage({ type: 'rules', rules: [] }), h);
      return;
    }
    const decoded = decodeClientMessage(text);
    if (!decoded.ok || decoded.message.type !== 'verdict') {
      respond(encodeMessage({ type: 'error', code: 'not-supported', message: 'the simulated agent answers verdicts and snapshots' }));
      return;
    }
    const m = decoded.message;
    this.verdictRequests++;
    const again = this.applied.get(m.id);
    if (again) return respond(again);
    const flow = this.live.get(m.id);
    if (!flow?.pending) return respond(encodeMessage({ type: 'error', code: flow ? 'not-pending' : 'unknown-flow', message: `flow ${m.id} is not waiting`, ...(m.ref ? { ref: m.ref } : {}) }));
    delete flow.pending;
    const verdict: ExtensionMessage = { type: 'verdict', id: m.id, time: Date.now(), verdict: { action: m.action, by: 'user', reason: `decided over NATS` } };
    flow.verdict = (verdict as { verdict: FlowRecord['verdict'] }).verdict;
    const line = encodeMessage(verdict);
    this.applied.set(m.id, line);
    respond(line);
    // Its local clients (and so the stream) hear of it too, as from the real agent.
    void this.publish([verdict]).catch(() => undefined);
  }

  async stop(): Promise<void> {
    clearInterval(this.announcer);
    this.sub?.unsubscribe();
    await this.nc.close();
  }
}
