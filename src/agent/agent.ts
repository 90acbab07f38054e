// `flowtop agent`, the main thread: starts and stops the queue threads, the firewall rules, the BPF
// recorder, the DNS-answer thread and the socket server, and wires them to the flows the queue
// threads hand over (held-flows.ts: pending flows, verdicts, deadlines), to the clients' verdicts
// (client-verdicts.ts) and rule requests (rule-requests.ts), and to its observers (observers.ts).
// Everything it reads from or does to the system comes through one AgentIo (io.ts; linux-io.ts is
// the real one), so its policy is tested on fakes without root.
import { hostname } from 'node:os';
import type { Action, ExtensionMessage, HelloMessage, RuleChangedMessage } from '../protocol/messages.js';
import type { RequestMessage, ServerClient } from '../protocol/server.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { VERSION } from '../version.js';
import { ClientVerdicts } from './client-verdicts.js';
import { effectivePolicy } from './effective-policy.js';
import { FlowNames } from './flow-names.js';
import { HeldFlows } from './held-flows.js';
import type { AgentIo, QueueWorkers, Recorder } from './io.js';
import { endLiveFlow } from './live-ending.js';
import { LiveFlows } from './live-flows.js';
import { Audience } from './audience.js';
import { EndedRules } from './ended-rules.js';
import { ObserverList } from './observers.js';
import type { AgentOptions } from './options.js';
import { RuleConversation } from './rule-requests.js';
import { AttributionReport, SharedCounters, StatusFileWriter, type AgentStatus } from './status.js';
import { LISTENERS_SLOT, type MainToWorker } from './types.js';
import { UnwatchedFlows } from './unwatched-flows.js';
import { workerRules } from './worker-rules.js';

export const AGENT_VERSION = VERSION;
export { statusFileFor } from './socket-files.js';
export { readStatus, type AgentCounters, type AgentStatus } from './status.js';
export type { AgentOptions } from './options.js';

/** How often pending flows are checked for a dead owner (a /proc read per pending flow). */
const REAP_INTERVAL_MS = 250;
/** How often rules whose process ended or whose time passed are dropped (a /proc read per process rule). */
const ENDED_RULES_INTERVAL_MS = 2_000;

export class Agent {
  private readonly counters = new SharedCounters();
  private readonly flows: HeldFlows;
  private readonly names = new FlowNames();
  private readonly unwatched = new UnwatchedFlows(() => this.live?.openSockets());
  private readonly audience: Audience;
  private readonly endedRules: EndedRules;
  private readonly ruleTalk: RuleConversation;
  private readonly verdicts: ClientVerdicts;
  private readonly log: (line: string) => void;
  private readonly statusFile = new StatusFileWriter((line) => this.log(line));
  private readonly started: number;
  /** Whether any rule is keyed by code identity (see worker-rules.ts). */
  private identityRules = false;
  private pool?: QueueWorkers;
  private firewall?: { backend: string; remove(): void | Promise<void> };
  private recorder?: Recorder;
  private report = new AttributionReport('inode-scan', '');
  private live?: LiveFlows;
  private readonly timers: Array<() => void> = [];
  private stopped = false;
  /** Resolved by hasten(): the stop skips its grace periods (the cleanup itself still runs). */
  private hurry: () => void = () => {};
  private readonly hurried = new Promise<void>((resolve) => (this.hurry = resolve));

  constructor(readonly options: AgentOptions, private readonly io: AgentIo) {
    this.log = options.log ?? ((line) => process.stderr.write(`flowtop agent: ${line}\n`));
    this.started = io.clock.now();
    this.flows = new HeldFlows({
      io, options, counters: this.counters, names: this.names, unwatched: this.unwatched,
      live: () => this.live,
      pool: () => this.pool,
      identityRules: () => this.identityRules,
      watched: () => this.audience.watched,
      endedWhole: () => this.audience.endedWhole,
      tell: (event, when) => this.audience.tell(event, when),
      tellEnded: (flow) => this.audience.tellEnded(flow),
      log: this.log,
    });
    const observers = new ObserverList(options.observers ?? [], this.log);
    this.audience = new Audience(observers);
    // The queue threads publish each decided flow only while someone listens; an observer always does.
    if (observers.size > 0) this.counters.set(LISTENERS_SLOT, 1);
    const rulesChanged = (): void => this.pool?.post(this.rulesMessage());
    this.ruleTalk = new RuleConversation({ rules: options.rules, broadcast: (m) => this.audience.broadcast(m), watched: () => this.audience.watched, changed: rulesChanged, log: this.log });
    this.endedRules = new EndedRules(options.rules, io.tokenGone, rulesChanged, this.log);
    this.verdicts = new ClientVerdicts({
      pending: this.flows.pending,
      live: () => this.live,
      decide: (p, verdict) => this.flows.decide(p, verdict),
      endLive: (flow) => endLiveFlow(io, this.flows.recent, flow, io.clock.now()),
      tell: (event, when) => this.audience.tell(event, when),
      rules: this.ruleTalk,
      ...(options.attribution ? { attribution: options.attribution } : {}),
      blockMode: options.blockMode,
      now: () => io.clock.now(),
      log: this.log,
    });
  }

  async start(): Promise<void> {
    const o = this.options;
    this.recorder = this.io.attachRecorder(this.log);
    this.report = new AttributionReport(this.recorder.method, this.recorder.detail);
    const pool = this.io.queueWorkers({
      queueNum: o.queueNum, failOpen: o.failOpen, defaultAction: o.defaultAction, blockMode: o.blockMode, counters: this.counters.buffer, ...this.recorder.maps,
      ...(o.selfToken !== undefined ? { selfToken: o.selfToken } : {}),
    }, o.workers ?? 1, {
      onMessage: (m) => {
        if (m.type === 'held') this.flows.receiveHeld(m.held);
        else if (m.type === 'decided') this.flows.receiveDecided(m.batch);
        else if (m.type === 'hits') for (const [id, count] of m.hits) o.rules.recordHits(id, count, this.io.clock.now());
        else {
          this.report.addNote(m.message);
          this.log(m.message);
        }
      },
      onExit: (message) => {
        if (this.stopped) return;
        this.log(message);
        // Without its queue loop the agent judges nothing: say so and let the caller exit (a service
        // manager restarts it; meanwhile the queue's fail-open/closed setting applies).
        o.onFatal?.(message);
      },
      log: (line) => {
        if (!this.stopped) this.log(line);
      },
    });
    this.pool = pool;
    await pool.start(this.rulesMessage());
    const dnsQueueNum = (o.queueNum + pool.count) & 0xffff;
    this.names.answers = await this.io.dnsAnswers(dnsQueueNum, (packets) => this.names.learn(packets), this.log);
    // The queue is bound before the rules send packets to it, so fail-closed never blackholes a start.
    const firewall = this.io.installFirewall({ queueNum: o.queueNum, queueCount: pool.count, failOpen: o.failOpen, inbound: o.inbound, ...(this.names.answers ? { dnsQueueNum } : {}) });
    this.firewall = firewall;
    if (firewall.replacedStale) this.log('replaced firewall rules left by an earlier agent');
    this.log(`queue ${o.queueNum} via ${firewall.backend}; attribution ${this.report.method}${this.report.detail ? ` (${this.report.detail})` : ''}; ${o.failOpen ? 'fail-open' : 'fail-closed'}`);
    this.live = new LiveFlows(this.io.socketReader(), {
      udpIdleMs: o.udpIdleMs ?? 30_000,
      intervalMs: o.trafficIntervalMs ?? 1000,
      send: (m) => this.audience.tell(m),
      onError: (e) => this.log(`traffic counters: ${(e as Error).message}`),
      ...(this.recorder.closedSockets ? { closedSockets: this.recorder.closedSockets } : {}),
    });
    this.audience.server = await this.io.serve(o.socketPath, {
      hello: () => this.hello(),
      onSubscribe: () => {
        // Before the snapshot: the flows allowed while nobody watched that are still open.
        for (const flow of this.live ? this.unwatched.take() : []) {
          this.names.name(flow);
          this.live?.add(flow);
        }
        this.counters.set(LISTENERS_SLOT, 1);
        return this.snapshot();
      },
      onClientClosed: () => this.counters.set(LISTENERS_SLOT, this.audience.watched ? 1 : 0),
      onMessage: (client, msg) => this.request(client, msg),
      log: this.log,
    });
    this.writeStatus();
    const clock = this.io.clock;
    this.timers.push(clock.every(1000, () => this.writeStatus()), clock.every(REAP_INTERVAL_MS, () => this.reap()));
    this.timers.push(clock.every(ENDED_RULES_INTERVAL_MS, () => this.stopped || void this.endedRules.drop(clock.now())));
    this.ruleTalk.start();
  }

  /** A client's request, from the socket or from elsewhere (the fleet link): the same handlers. */
  request(client: ServerClient, msg: RequestMessage): void {
    if (msg.type === 'verdict') this.verdicts.handle(client, msg);
    else this.ruleTalk.handle(client, msg);
  }

  /** What a new subscriber is sent first: hello, pending and live flows, byte counters, rules. */
  snapshotMessages(): ExtensionMessage[] {
    return [this.hello(), ...this.snapshot()];
  }

  /** The rule list changed outside a request (the fleet's rules): the queue threads learn it and the
   *  clients hear each change. */
  rulesChangedElsewhere(changes: readonly RuleChangedMessage[]): void {
    this.pool?.post(this.rulesMessage());
    for (const change of changes) this.ruleTalk.announce(change);
  }

  private rulesMessage(): MainToWorker {
    const { message, identityRules } = workerRules(this.options.rules.list());
    this.identityRules = identityRules;
    return message;
  }

  /** The action when nobody decides: the stricter of `--default` and the rules file's policy. */
  get defaultAction(): Action {
    return this.flows.defaultAction;
  }

  /** Pending flows whose process died get the default now; the recorder's programs are still
   *  attached, or attached again (the status says so when not). */
  private reap(): void {
    this.flows.reap();
    const state = this.stopped ? undefined : this.recorder?.check();
    if (state) [this.report.method, this.report.note] = [state.method, state.note];
  }

  hello(): HelloMessage {
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      extension: { name: 'flowtop-agent', version: AGENT_VERSION },
      platform: 'linux',
      host: this.options.hostName ?? hostname(),
      capabilities: ['verdicts', 'end-flows', 'rules', 'bytes', 'verdict-durations', 'verdict-scopes', ...(this.names.answers ? ['host-names' as const] : [])],
      tokenKind: 'linux-pidfd-v1',
      mode: { failOpen: this.options.failOpen, attribution: this.report.method, timeoutMs: this.options.timeoutMs, ...effectivePolicy(this.options, this.options.rules.policy()), ...(this.options.history !== undefined ? { history: this.options.history } : {}) },
    };
  }

  private *snapshot(): Iterable<ExtensionMessage> {
    for (const p of this.flows.pending.all()) yield { type: 'flow', flow: p.flow };
    if (!this.live) return;
    const counters: Array<{ id: string; rx: number; tx: number }> = [];
    for (const l of this.live.all()) {
      yield { type: 'flow', flow: l.flow };
      if (l.rx > 0 || l.tx > 0) counters.push({ id: l.flow.id, rx: l.rx, tx: l.tx });
    }
    // One message: the server splits a long counter list across lines.
    if (counters.length > 0) yield { type: 'bytes', counters, time: this.io.clock.now() };
    yield* this.ruleTalk.snapshot();
  }

  status(): AgentStatus {
    const o = this.options;
    return {
      pid: process.pid, started: this.started, socket: o.socketPath, queueNum: o.queueNum, failOpen: o.failOpen, defaultAction: this.defaultAction,
      timeoutMs: o.timeoutMs, blockMode: o.blockMode, firewall: this.firewall?.backend ?? 'none', attribution: this.report.method,
      attributionDetail: this.report.fullDetail, counters: this.counters.values(this.flows.pending.size), clients: this.audience.server?.clients.length ?? 0,
      ...(o.historyStatus ? { history: o.historyStatus() } : {}),
      ...(o.fleetStatus ? { fleet: o.fleetStatus() } : {}),
    };
  }

  private writeStatus(): void {
    this.statusFile.write((text) => this.audience.server?.writeStatus(text), this.status());
  }

  /** A later stop signal: threads are terminated at once instead of being given time to finish. */
  hasten(): void {
    this.hurry();
  }

  /** Pending flows get the default action, then rules, queue, programs and socket are removed. Each
   *  step runs even when an earlier one failed: one error must not leave the rest installed. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const cancel of this.timers) cancel();
    this.ruleTalk.stop();
    const steps: Array<[string, () => unknown]> = [
      ['answering pending flows', () => this.flows.answerAll('the agent stopped')],
      ['removing the firewall rules', () => this.firewall?.remove()],
      ['stopping the queue threads', () => this.pool?.stop()],
      ['stopping the DNS thread', () => this.names.answers?.stop(this.hurried)],
      ['detaching the BPF programs', () => this.recorder?.close()],
      ['closing the traffic reader', () => this.live?.close()],
      ['closing sock_diag and conntrack', () => this.io.close()],
      ['forgetting blocked conversations', () => this.flows.blocked.close()],
      ['closing the socket', () => this.audience.server?.close()],
      ['removing the socket and status file', () => this.audience.server?.removeFiles()],
    ];
    for (const [what, run] of steps) {
      try {
        await run();
      } catch (error) {
        this.log(`stopping: ${what} failed: ${(error as Error).message}`);
      }
    }
  }
}
