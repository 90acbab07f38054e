// A fake AgentIo (src/agent/io.ts) for the agent's policy without root: a clock the test moves, queue
// threads the test speaks for (held packets in, packet verdicts out), a server whose broadcasts and
// clients the test sees, and records of every socket destroyed and conntrack entry deleted.
import type { Endpoint, ExtensionMessage, FlowRecord } from '../../src/protocol/messages.js';
import type { RequestMessage, ServerClient } from '../../src/protocol/server.js';
import type { AgentIo, Clock, FirewallRequest, ServerHandlers } from '../../src/agent/io.js';
import type { HeldFlow, MainToWorker, WorkerConfig } from '../../src/agent/types.js';
import type { PoolHandlers } from '../../src/agent/worker-pool.js';
import type { DestroyOutcome } from '../../src/agent/socket-destroy.js';
import { flowKey } from '../../src/agent/packet.js';
import { DecidedBatchWriter, type DecidedFlow } from '../../src/agent/decided-batch.js';
import { addressBytes } from '../../src/native/linux/sock-diag.js';

export class ManualClock implements Clock {
  private timers: Array<{ at: number; fn: () => void; every?: number }> = [];
  constructor(public time = 1_700_000_000_000) {}
  now = (): number => this.time;
  after = (ms: number, fn: () => void): (() => void) => this.schedule({ at: this.time + ms, fn });
  every = (ms: number, fn: () => void): (() => void) => this.schedule({ at: this.time + ms, fn, every: ms });
  /** Moves time on, running each timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.time = due.at;
      if (due.every) due.at += due.every;
      else this.timers = this.timers.filter((t) => t !== due);
      due.fn();
    }
    this.time = end;
  }
  private schedule(t: { at: number; fn: () => void; every?: number }): () => void {
    this.timers.push(t);
    return () => void (this.timers = this.timers.filter((x) => x !== t));
  }
}

export class FakeClient implements ServerClient {
  readonly sent: ExtensionMessage[] = [];
  readonly replies: Array<{ code: string; message: string; ref?: string }> = [];
  subscribed = false;
  constructor(readonly id: string) {}
  send(msg: ExtensionMessage): boolean {
    this.sent.push(msg);
    return true;
  }
  reply(code: string, message: string, ref?: string): boolean {
    this.replies.push({ code, message, ...(ref !== undefined ? { ref } : {}) });
    return true;
  }
  close(): void {}
}

let packetIds = 0;

/** A held packet as a queue thread hands it over: a TCP SYN (or UDP datagram) from a local program. */
export function heldPacket(protocol: 'tcp' | 'udp', localPort: number, remotePort: number, extra: Partial<FlowRecord> = {}): HeldFlow {
  const packetId = ++packetIds;
  const local: Endpoint = { address: '10.0.0.2', port: localPort };
  const remote: Endpoint = { address: '10.0.0.9', port: remotePort };
  return {
    packetId,
    key: flowKey({ protocol, src: addressBytes(local.address), srcPort: local.port, dst: addressBytes(remote.address), dstPort: remote.port }),
    flow: { id: `q7-test-${packetId}`, time: 0, direction: 'outbound', protocol, family: 'ipv4', local, remote, pid: 4242, ...extra },
    needsIdentity: false,
  };
}

/** A flow a queue thread's rule decided, as it writes it into a batch (10.0.0.2 → 10.0.0.9). */
export function decidedPacket(protocol: 'tcp' | 'udp', localPort: number, remotePort: number, ruleId: string, extra: Partial<DecidedFlow> = {}): DecidedFlow {
  return {
    packetId: ++packetIds, time: 0, protocol, family: 'ipv4', direction: 'outbound',
    local: { address: addressBytes('10.0.0.2'), port: localPort }, remote: { address: addressBytes('10.0.0.9'), port: remotePort },
    ruleId, pid: 4242, ...extra,
  };
}

export class FakeIo implements AgentIo {
  readonly clock = new ManualClock();
  /** Packet verdicts sent to the queues, in order. */
  readonly answered: Array<{ id: number; verdict: number }> = [];
  /** What the queue threads were told. */
  readonly posted: MainToWorker[] = [];
  /** Every broadcast, with how it was sent. */
  readonly broadcasts: Array<{ msg: ExtensionMessage; when: 'now' | 'soon' }> = [];
  readonly statuses: string[] = [];
  readonly destroyed: Array<{ protocol: string; local: Endpoint; remote: Endpoint }> = [];
  readonly forgotten: Array<{ src: Endpoint; dst: Endpoint }> = [];
  readonly clients: FakeClient[] = [];
  /** Pending flows whose process has died, by pid, with the reason. */
  readonly deadOwners = new Map<number, string>();
  firewall?: FirewallRequest & { removed: boolean };
  config?: WorkerConfig;
  private pool?: PoolHandlers;
  private handlers?: ServerHandlers;

  /** TCP sockets that closed, with their final counters, by local port (each found once). */
  readonly closed = new Map<number, { rx: number; tx: number; closedAt?: number }>();

  attachRecorder: AgentIo['attachRecorder'] = () => {
    const take = (port: number): { rx: number; tx: number; closedAt?: number } | undefined => {
      const c = this.closed.get(port);
      this.closed.delete(port);
      return c;
    };
    return {
      method: 'inode-scan', detail: 'fake recorder', check: () => undefined, close: () => {},
      closedSockets: { collect: () => [], counters: (local) => take(local.port), collectedCounters: (_l, localPort) => take(localPort) },
    };
  };

  queueWorkers: AgentIo['queueWorkers'] = (config, count, handlers) => {
    this.config = config;
    this.pool = handlers;
    return {
      count,
      start: async (rules) => void this.posted.push(rules),
      post: (m) => void this.posted.push(m),
      sendVerdicts: (verdicts) => {
        this.answered.push(...verdicts);
        return 0;
      },
      stop: async () => {},
    };
  };

  dnsAnswers: AgentIo['dnsAnswers'] = async () => undefined;

  installFirewall: AgentIo['installFirewall'] = (request) => {
    const firewall = { ...request, removed: false };
    this.firewall = firewall;
    return { backend: 'fake', replacedStale: false, remove: () => void (firewall.removed = true) };
  };

  socketReader: AgentIo['socketReader'] = () => ({ kind: 'sock_diag', counters: true, exactLookups: true, dumpAll: () => [], lookup: () => undefined, close: () => {} });

  serve: AgentIo['serve'] = async (_path, handlers) => {
    this.handlers = handlers;
    const clients = this.clients;
    const out = (msg: ExtensionMessage, when: 'now' | 'soon'): void => {
      this.broadcasts.push({ msg, when });
      for (const c of clients) if (c.subscribed) c.sent.push(msg);
    };
    return {
      clients,
      broadcast: (msg) => out(msg, 'now'),
      broadcastSoon: (msg) => out(msg, 'soon'),
      writeStatus: (text) => void this.statuses.push(text),
      close: async () => {},
      removeFiles: () => {},
    };
  };

  /** What the next socket destroys come to. */
  destroyOutcome: DestroyOutcome = { result: 'destroyed' };
  destroySocket: AgentIo['destroySocket'] = (flow) => {
    this.destroyed.push(flow);
    return this.destroyOutcome;
  };

  forgetUdpFlow: AgentIo['forgetUdpFlow'] = (src, dst) => {
    this.forgotten.push({ src, dst });
    return true;
  };

  ownerGone: AgentIo['ownerGone'] = (flow) => (flow.pid !== undefined ? this.deadOwners.get(flow.pid) : undefined);
  tokenGone: AgentIo['tokenGone'] = () => false;
  close: AgentIo['close'] = () => {};

  /** A queue thread's message. */
  fromWorker(m: Parameters<PoolHandlers['onMessage']>[0]): void {
    this.pool!.onMessage(m);
  }

  hold(...held: HeldFlow[]): void {
    this.fromWorker({ type: 'held', held });
  }

  /** One batch of flows a queue thread's rules decided; their ids are `q7-test-<packet id>`. */
  decided(...flows: DecidedFlow[]): void {
    const writer = new DecidedBatchWriter('q7-test-', Math.max(1, flows.length));
    for (const f of flows) writer.add(f);
    this.fromWorker({ type: 'decided', batch: writer.take() });
  }

  /** A client that connects and subscribes: what its snapshot held. */
  subscribe(id = `c${this.clients.length + 1}`): FakeClient {
    const client = new FakeClient(id);
    this.clients.push(client);
    client.sent.push(this.handlers!.hello());
    client.sent.push(...this.handlers!.onSubscribe(client));
    client.subscribed = true;
    return client;
  }

  request(client: FakeClient, msg: RequestMessage): void {
    this.handlers!.onMessage(client, msg);
  }

  /** The answers given for one packet. */
  answersFor(packetId: number): number[] {
    return this.answered.filter((a) => a.id === packetId).map((a) => a.verdict);
  }
}
