// `flowtop agent`, the main thread: installs the firewall rules and the BPF recorder, runs the queue
// worker, keeps pending flows with their deadlines, and serves protocol v1 to clients. The worker
// decides flows a rule covers; this thread decides the others (client verdicts, identity rules,
// deadline → default) and answers their packets on the queue's socket.
import { hostname } from 'node:os';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import type { Attribution, AttributionBackend } from '../attribution/types.js';
import type {
  Action, BlockMode, ClientVerdictMessage, ExtensionMessage, FlowRecord, HelloMessage, Rule, RuleIdentity, RuleSpec, Verdict,
} from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { ExtensionServer, type RequestMessage, type ServerClient } from '../protocol/server.js';
import { SocketRecorder, cgroup2Root } from '../native/linux/bpf.js';
import { installFirewall, type InstalledFirewall } from '../native/linux/firewall.js';
import { NF_ACCEPT, NF_DROP } from '../native/linux/nfqueue.js';
import { SockDiag, addressBytes } from '../native/linux/sock-diag.js';
import { Conntrack } from '../native/linux/conntrack.js';
import { flowFacts } from '../rules/matcher.js';
import { flowIdentityFromKey, identityFromKey } from '../rules/model.js';
import { rememberedRule, subjectOf } from '../rules/remember.js';
import { decodeLinuxToken } from '../protocol/tokens.js';
import { decideByPolicy } from '../rules/policy.js';
import { authorizeClient, ensureGroup } from './authorize.js';
import { peerCredentials } from '../native/linux/peercred.js';
import { VERSION } from '../version.js';
import { SocketFiles, readStatusFile } from './socket-files.js';
import { openSocketReader } from '../traffic/index.js';
import { HostNameMap } from '../hostnames/index.js';
import { dnsMessagesOf } from './dns-packet.js';
import { flowKey } from './packet.js';
import type { DnsWorkerMessage } from './dns-worker.js';
import { LiveFlows } from './live-flows.js';
import { decodeUnwatched, type UnwatchedBatch } from './unwatched-batch.js';
import { PendingTable, type PendingFlow } from './pending.js';
import { QueueWorkerPool } from './worker-pool.js';
import { ownerGone, tokenGone } from './reaper.js';
import { RecorderWatch } from './recorder-watch.js';
import type { RuleBook } from './rule-book.js';
import { RuleConversation } from './rule-requests.js';
import { effectivePolicy } from './effective-policy.js';
import { COUNTER, COUNTER_SLOTS, LISTENERS_SLOT, type AttributionMethod, type HeldFlow, type MainToWorker, type WorkerConfig } from './types.js';
import { BlockedConversations } from './blocked-conversations.js';
import { ObserverList, isAgentEvent, type AgentEvent, type AgentObserver } from './observers.js';

export const AGENT_VERSION = VERSION;
export { statusFileFor } from './socket-files.js';

export interface AgentOptions {
  socketPath: string;
  queueNum: number;
  /** Queue threads, one NFQUEUE each from queueNum up (default 1). */
  workers?: number;
  defaultAction: Action;
  timeoutMs: number;
  failOpen: boolean;
  blockMode: BlockMode;
  inbound: boolean;
  /** cgroup v2 directory to attach the recorder to (default: the cgroup2 root). */
  cgroup?: string;
  /** Skip BPF and use the inode scan (for tests and kernels where BPF misbehaves). */
  noBpf?: boolean;
  rules: RuleBook;
  /** Resolves tokens to identities for identity-keyed rules and `remember always`. */
  attribution?: AttributionBackend;
  /** A UDP flow ends after this long with no activity seen (default 30 s). */
  udpIdleMs?: number;
  /** How often byte counters and ends are polled (default 1 s). */
  trafficIntervalMs?: number;
  log?: (line: string) => void;
  /** The agent can no longer judge packets (its queue loop died). */
  onFatal?: (message: string) => void;
  /** Told every event the subscribed clients are sent (see observers.ts). While there is one, the
   *  agent publishes every flow as if a client were subscribed: none goes into the unwatched batches. */
  observers?: readonly AgentObserver[];
}

export interface AgentCounters {
  queued: number;
  decidedByRule: number;
  /** Of those, by an identity rule matched in a queue worker (the code identity already verified). */
  decidedByIdentityInWorker: number;
  decidedByUser: number;
  decidedByDefault: number;
  unparsed: number;
  ownerFound: number;
  ownerMissing: number;
  verdictErrors: number;
  pending: number;
}

export interface AgentStatus {
  pid: number;
  started: number;
  socket: string;
  queueNum: number;
  failOpen: boolean;
  defaultAction: Action;
  timeoutMs: number;
  blockMode: BlockMode;
  firewall: string;
  attribution: string;
  attributionDetail: string;
  counters: AgentCounters;
  clients: number;
}

/** How long a decision also answers further packets of the same 5-tuple (TCP gives up retrying a
 *  dropped SYN after ~2 minutes). */
const RECENT_MS = 130_000;
const RECENT_MAX = 4096;
/** Flows allowed by rule while no client watched, kept for the next one (pruned by a socket dump). */
const MAX_UNWATCHED = 20_000;
/** How often pending flows are checked for a dead owner (a /proc read per pending flow). */
const REAP_INTERVAL_MS = 250;
/** How often rules whose process ended or whose time passed are dropped (a /proc read per process rule). */
const ENDED_RULES_INTERVAL_MS = 2_000;

function slotOf(verdict: Verdict): number {
  return verdict.by === 'rule' ? COUNTER.rule : verdict.by === 'user' ? COUNTER.user : COUNTER.default;
}

export class Agent {
  private readonly recent = new Map<string, { verdict: Verdict; until: number }>();
  /** Blocked flows by conversation: a blocked sender's next packets count on one flow. */
  private readonly blocked = new BlockedConversations((flow) => this.tell({ type: 'flow', flow }));
  /** Flows allowed by rule while no client watched, for the next one: batches as the queue threads
   *  sent them, and the flows a prune kept. */
  private unwatchedBatches: UnwatchedBatch[] = [];
  private unwatchedKept: FlowRecord[] = [];
  private unwatchedCount = 0;
  /** Executable file keys whose identity the workers were told. */
  private readonly taught = new Set<string>();
  private readonly counters = new SharedArrayBuffer(8 * COUNTER_SLOTS);
  private readonly view = new BigInt64Array(this.counters);
  private readonly pending = new PendingTable((p) => this.decide(p, p.fallback ?? this.defaultVerdict('nobody answered in time')));
  /** Whether any rule (once rules included) is keyed by code identity: flows then need their
   *  attribution resolved before the rules can be matched. */
  private identityRules = false;
  private readonly diag = new SockDiag();
  private conntrack?: Conntrack;
  private pool?: QueueWorkerPool;
  private firewall?: InstalledFirewall;
  private recorder?: SocketRecorder;
  private recorderWatch?: RecorderWatch;
  /** What happened to the recorder since it was attached (see RecorderWatch). */
  private recorderNote?: string;
  private server?: ExtensionServer;
  private files?: SocketFiles;
  private live?: LiveFlows;
  private dnsWorker?: Worker;
  private dnsControl?: MessageChannel;
  private dnsAnswers?: MessageChannel;
  private readonly names = new HostNameMap();
  private method: AttributionMethod = 'inode-scan';
  private methodDetail = '';
  private readonly started = Date.now();
  private statusTimer?: NodeJS.Timeout;
  private reapTimer?: NodeJS.Timeout;
  private endedRulesTimer?: NodeJS.Timeout;
  private droppingRules = false;
  private stopped = false;
  /** Resolved by hasten(): the stop skips its grace periods (the cleanup itself still runs). */
  private hurry: () => void = () => {};
  private readonly hurried = new Promise<void>((resolve) => (this.hurry = resolve));
  private readonly log: (line: string) => void;
  private readonly ruleTalk: RuleConversation;
  private readonly observers: ObserverList;

  constructor(readonly options: AgentOptions) {
    this.log = options.log ?? ((line) => process.stderr.write(`flowtop agent: ${line}\n`));
    this.observers = new ObserverList(options.observers ?? [], this.log);
    // The queue threads publish each decided flow only while someone listens; an observer always does.
    if (this.observers.size > 0) Atomics.store(this.view, LISTENERS_SLOT, 1n);
    this.ruleTalk = new RuleConversation({
      rules: options.rules,
      broadcast: (m) => {
        this.server?.broadcastSoon(m);
        if (isAgentEvent(m)) this.observers.notify(m);
      },
      watched: () => this.watched(),
      changed: () => this.sendRules(),
      log: this.log,
    });
  }

  get attributionMethod(): AttributionMethod {
    return this.method;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.startRecorder();
    await this.startWorker();
    const dnsQueueNum = (o.queueNum + (this.pool?.count ?? 1)) & 0xffff;
    const dns = await this.startDnsWorker(dnsQueueNum);
    // The queue is bound before the rules send packets to it, so fail-closed never blackholes a start.
    this.firewall = installFirewall({ queueNum: o.queueNum, queueCount: this.pool?.count ?? 1, bypass: o.failOpen, inbound: o.inbound, ...(dns ? { dnsQueueNum } : {}) });
    if (this.firewall.replacedStale) this.log('replaced firewall rules left by an earlier agent');
    this.log(`queue ${o.queueNum} via ${this.firewall.backend}; attribution ${this.method}${this.methodDetail ? ` (${this.methodDetail})` : ''}; ${o.failOpen ? 'fail-open' : 'fail-closed'}`);
    this.live = new LiveFlows(openSocketReader(), {
      udpIdleMs: o.udpIdleMs ?? 30_000,
      intervalMs: o.trafficIntervalMs ?? 1000,
      send: (m) => this.tell(m),
      onError: (e) => this.log(`traffic counters: ${(e as Error).message}`),
    });
    const group = ensureGroup();
    // Bound and given its mode and group in a private directory, then renamed to its path: the
    // socket's directory may be one others can write (see socket-files.ts).
    this.files = await SocketFiles.prepare(o.socketPath);
    this.server = new ExtensionServer({
      path: this.files.bindPath,
      hello: () => this.hello(),
      onSubscribe: () => {
        this.adoptUnwatched();
        Atomics.store(this.view, LISTENERS_SLOT, 1n);
        return this.snapshot();
      },
      onClientClosed: () => Atomics.store(this.view, LISTENERS_SLOT, this.watched() ? 1n : 0n),
      onMessage: (client, msg) => this.onMessage(client, msg),
      authorizePeer: (client) => authorizeClient(client, group.gid),
      peerCredentials,
      log: this.log,
    });
    await this.server.listen();
    this.files.publish(0o660, group.gid, this.log);
    this.writeStatus();
    this.statusTimer = setInterval(() => this.writeStatus(), 1000);
    this.statusTimer.unref();
    this.reapTimer = setInterval(() => {
      this.reap();
      this.watchRecorder();
    }, REAP_INTERVAL_MS);
    this.reapTimer.unref();
    this.endedRulesTimer = setInterval(() => void this.dropEndedRules(), ENDED_RULES_INTERVAL_MS);
    this.endedRulesTimer.unref();
    this.ruleTalk.start();
  }

  /** Rules kept "until it exits" whose process instance has ended, and timed rules whose time has
   *  passed, leave the list (and the file): they can never match again, and clients are told
   *  (`rule-changed` `removed`, sent by the rule conversation when it sees the list change). */
  private async dropEndedRules(): Promise<void> {
    if (this.droppingRules || this.stopped) return;
    this.droppingRules = true;
    try {
      const now = Date.now();
      const ended = this.options.rules.list().filter((r) => (r.duration.kind === 'process' && tokenGone(r.duration.token)) || (r.duration.kind === 'until' && r.duration.until <= now));
      for (const rule of ended) await this.options.rules.remove(rule.id);
      if (ended.length > 0) this.sendRules();
    } catch (error) {
      this.log(`could not drop ended rules: ${(error as Error).message}`);
    } finally {
      this.droppingRules = false;
    }
  }

  /** Pending flows whose process died get the default now, with the reason: nobody waits for them. */
  private reap(): void {
    if (this.pending.size === 0) return;
    for (const p of this.pending.all()) {
      const reason = ownerGone(p.flow);
      if (reason) this.decide(p, { ...(p.fallback ?? this.defaultVerdict(reason)), reason });
    }
  }

  private startRecorder(): void {
    if (this.options.noBpf) {
      this.methodDetail = 'BPF disabled by --no-bpf';
      return;
    }
    const found = this.options.cgroup ? { path: this.options.cgroup, release: () => {}, private: false } : cgroup2Root();
    if (!found) {
      this.methodDetail = 'no cgroup v2 hierarchy: falling back to /proc scans';
      return;
    }
    const root = found.path;
    try {
      this.recorder = SocketRecorder.attach(root);
      // the attachment holds the cgroup: a private mount of it is no longer needed
      found.release();
      this.method = 'bpf-cookie';
      this.recorderWatch = new RecorderWatch(this.recorder, (line) => this.log(line));
      this.methodDetail = `cgroup ${found.private ? 'v2 root (private mount)' : root}; ${this.recorder.instanceNote}${this.recorder.staleRemoved ? `; removed ${this.recorder.staleRemoved} stale programs` : ''}`;
      if (this.recorder.staleRemoved) this.log(`removed ${this.recorder.staleRemoved} BPF programs left attached by an earlier agent`);
    } catch (error) {
      found.release();
      this.methodDetail = `BPF unavailable (${(error as Error).message.split('\n')[0]}): falling back to /proc scans`;
      this.log(this.methodDetail);
    }
  }

  /** The recorder's programs still attached, or attached again; the method says so when not. */
  private watchRecorder(): void {
    if (!this.recorderWatch || this.stopped) return;
    const state = this.recorderWatch.check();
    this.method = state.method;
    this.recorderNote = state.note;
  }

  private startWorker(): Promise<void> {
    const o = this.options;
    const config: WorkerConfig = {
      queueNum: o.queueNum,
      failOpen: o.failOpen,
      defaultAction: o.defaultAction,
      blockMode: o.blockMode,
      counters: this.counters,
      ...(this.recorder ? { cookieMap: this.recorder.cookieMap, tupleMap: this.recorder.tupleMap } : {}),
    };
    this.pool = new QueueWorkerPool(config, o.workers ?? 1, {
      onMessage: (m) => {
        if (m.type === 'flows') this.onFlows(m.held, m.decided, m.unwatched);
        else if (m.type === 'hits') for (const [id, count] of m.hits) this.options.rules.recordHits(id, count, Date.now());
        else if (m.type === 'note') {
          // each queue thread may say it: the status keeps the first, the log all
          const gist = m.message.split(' (')[0]!;
          if (!this.methodDetail.includes(gist)) this.methodDetail += `; ${m.message}`;
          this.log(m.message);
        }
      },
      onExit: (message) => {
        if (this.stopped) return;
        this.log(message);
        // Without its queue loop the agent judges nothing: say so and let the caller exit (a service
        // manager restarts it; meanwhile the queue's fail-open/closed setting applies).
        this.options.onFatal?.(message);
      },
      log: (line) => {
        if (!this.stopped) this.log(line);
      },
    });
    return this.pool.start(this.rulesMessage());
  }

  /** The DNS-answer queue's thread; false (and no host names) when it cannot run. */
  private startDnsWorker(queueNum: number): Promise<boolean> {
    this.dnsControl = new MessageChannel();
    this.dnsAnswers = new MessageChannel();
    const worker = new Worker(new URL('./dns-worker.js', import.meta.url), {
      workerData: { queueNum, control: this.dnsControl.port2, answers: this.dnsAnswers.port2 },
      transferList: [this.dnsControl.port2, this.dnsAnswers.port2],
    });
    this.dnsWorker = worker;
    this.dnsAnswers.port1.on('message', (packets: Uint8Array[]) => this.learnNames(packets));
    return new Promise((resolve) => {
      worker.on('message', (m: DnsWorkerMessage) => {
        if (m.type === 'ready') resolve(true);
        else if (m.type === 'fatal') {
          this.log(`host names from DNS answers are off: ${m.message}`);
          this.dnsWorker = undefined;
          resolve(false);
        }
      });
      worker.on('error', (error) => {
        this.log(`DNS answer queue: ${error.message}`);
        this.dnsWorker = undefined;
        resolve(false);
      });
    });
  }

  private learnNames(packets: Uint8Array[]): void {
    for (const packet of packets) {
      for (const message of dnsMessagesOf(Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength))) this.names.addResponse(message);
    }
  }

  /** Answers the DNS thread has posted but this thread has not handled yet. Messages from different
   *  threads are not delivered in the order they were posted: an answer is posted before it is
   *  released to the program, so reading them here, before naming a flow, never misses its name. */
  private drainNames(): void {
    const port = this.dnsAnswers?.port1;
    if (!port) return;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) this.learnNames(m.message as Uint8Array[]);
  }

  /** The name the program looked up for the flow's remote address, if a DNS answer gave one. */
  private nameFlow(flow: FlowRecord): void {
    if (flow.remoteHost) return;
    const entry = this.names.lookup(flow.remote.address);
    if (entry) flow.remoteHost = { name: entry.name, source: entry.source };
  }

  private sendRules(): void {
    this.pool?.post(this.rulesMessage());
  }

  private rulesMessage(): MainToWorker {
    const all = this.options.rules.list();
    this.identityRules = all.some((r) => r.enabled && r.identity !== undefined);
    // The worker knows no host names: while a rule names a host or domain, any rule it matched might
    // be beaten by that more specific one, so every flow is matched here (with its remoteHost).
    if (all.some((r) => r.enabled && (r.endpoint?.host !== undefined || r.endpoint?.domain !== undefined))) return { type: 'rules', rules: [] };
    // `once` rules are matched here only (store.match uses them up); the worker gets the others.
    return { type: 'rules', rules: all.filter((r) => r.duration.kind !== 'once') };
  }

  /** The action when nobody decides: the stricter of `--default` and the rules file's policy. */
  get defaultAction(): Action {
    return this.options.defaultAction === 'block' || this.options.rules.policy().defaultAction === 'block' ? 'block' : 'allow';
  }

  private defaultVerdict(reason: string): Verdict {
    const action = this.defaultAction;
    return { action, by: 'default', policy: 'defaultAction', reason, ...(action === 'block' ? { blockMode: this.options.blockMode } : {}) };
  }

  // ---- flows ----

  /** Whether anyone hears about flows: a subscribed client or an observer. */
  private watched(): boolean {
    return this.observers.size > 0 || (this.server?.clients.some((c) => c.subscribed) ?? false);
  }

  /** To the subscribed clients and the observers alike. `now` for what a person waits on (a pending
   *  flow); the rest leaves at the end of this event-loop turn, in one write per client. */
  private tell(event: AgentEvent, when: 'now' | 'soon' = 'soon'): void {
    if (when === 'now') this.server?.broadcast(event);
    else this.server?.broadcastSoon(event);
    this.observers.notify(event);
  }

  private onFlows(held: HeldFlow[], decided: Array<{ flow: FlowRecord; verdict: Verdict }>, unwatchedBatch?: UnwatchedBatch): void {
    this.drainNames();
    // Encoding costs main-thread time: decided flows are only published while someone listens. Those
    // allowed by rule while nobody watched are only kept (tracking each one's bytes would cost a lookup
    // per flow per second) and shown, if their socket still exists, to the next client that subscribes;
    // a batch that arrives just after a client subscribed is published like any decided flow.
    if (this.watched()) {
      for (const d of unwatchedBatch ? [...decided, ...decodeUnwatched(unwatchedBatch)] : decided) {
        const flow = { ...d.flow, verdict: d.verdict };
        // The next datagram (or retried SYN) of a conversation already blocked: counted on its flow.
        if (d.verdict.action === 'block' && this.blocked.count(flow)) continue;
        this.nameFlow(flow);
        this.tell({ type: 'flow', flow });
        if (d.verdict.action === 'allow') this.live?.add(flow);
        else this.blocked.begin(flow);
      }
    } else if (unwatchedBatch) {
      this.unwatchedBatches.push(unwatchedBatch);
      this.unwatchedCount += unwatchedBatch.count;
      if (this.unwatchedCount > MAX_UNWATCHED) this.pruneUnwatched();
    }
    const now = Date.now();
    for (const h of held) {
      this.nameFlow(h.flow);
      // A retransmitted SYN (or next datagram) of a flow just decided: the same answer, not a new prompt.
      const recent = this.recent.get(h.key);
      if (recent && recent.until > now) {
        this.sendVerdicts([{ id: h.packetId, verdict: recent.verdict.action === 'allow' ? NF_ACCEPT : NF_DROP }]);
        Atomics.add(this.view, slotOf(recent.verdict), 1n);
        if (recent.verdict.action === 'block') this.blocked.count(h.flow);
        continue;
      }
      const p = this.pending.add(h.key, h.flow, h.packetId, this.options.timeoutMs);
      if (!p) continue; // joined a flow that already waits
      this.tell({ type: 'flow', flow: p.flow }, 'now');
      this.settle(p, h.needsIdentity, h.exeKey).catch((error: unknown) => this.log(`settling flow ${p.flow.id} failed (the deadline decides it): ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  /** A flow the worker could not decide: the rules store (identity rules, `once` rules), then the
   *  policy switches. Identity needs the code identity (hash/package) of the token's executable,
   *  resolved here, off the worker. What no rule or switch decides waits for a person or the deadline. */
  private async settle(p: PendingFlow, needsIdentity: boolean, exeKey?: string): Promise<void> {
    const policy = this.options.rules.policy();
    const wantIdentity = needsIdentity || this.identityRules || policy.allowPackaged || policy.blockUnpackaged;
    let attribution: Attribution | undefined;
    const token = p.flow.token;
    if (wantIdentity && token && this.options.attribution) {
      try {
        [attribution] = await this.options.attribution.resolve([Buffer.from(token, 'base64')]);
      } catch (error) {
        attribution = { trust: 'insecure', reason: { call: 'resolve', message: (error as Error).message } };
      }
      this.teachIdentity(exeKey, attribution);
      if (!this.pending.get(p.flow.id)) return;
      // The identity the agent established for this very token, before its program could exit: the
      // flow carries it from now on, so a client whose own lookup comes too late can still show it.
      const identity = attribution?.trust === 'secure' && attribution.identity ? flowIdentityFromKey(attribution.identity, attribution.path) : undefined;
      if (identity) {
        p.flow.identity = identity;
        this.tell({ type: 'flow', flow: p.flow }, 'now');
      }
    }
    const rule = this.options.rules.match(flowFacts(p.flow, attribution), Date.now());
    if (rule) {
      this.decide(p, { action: rule.action, by: 'rule', ruleId: rule.id, ...(rule.action === 'block' ? { blockMode: rule.blockMode ?? this.options.blockMode } : {}) });
      return;
    }
    const d = decideByPolicy(attribution, { ...policy, defaultAction: this.defaultAction });
    if (d.by === 'default') return; // the deadline applies the default action
    const verdict: Verdict = { action: d.action, by: 'default', policy: d.by, reason: d.reason, ...(d.action === 'block' ? { blockMode: d.blockMode ?? this.options.blockMode } : {}) };
    if (d.immediate) this.decide(p, verdict);
    else p.fallback = verdict;
  }

  /** A secure identity verified for exactly the file the worker saw (same dev, inode, size, mtime,
   *  ctime): the workers match identity rules for that file themselves from now on. */
  private teachIdentity(exeKey: string | undefined, attribution: Attribution | undefined): void {
    if (!exeKey || attribution?.trust !== 'secure' || !attribution.identity || attribution.exeKey !== exeKey) return;
    if (this.taught.has(exeKey)) return;
    if (this.taught.size >= 4096) this.taught.clear();
    this.taught.add(exeKey);
    const flow = flowIdentityFromKey(attribution.identity, attribution.path);
    this.pool?.post({ type: 'identity', exeKey, known: { identity: attribution.identity, ...(attribution.path !== undefined ? { path: attribution.path } : {}), ...(flow ? { flow } : {}) } });
  }

  /** Answers every packet of a pending flow, once, and tells the clients. */
  private decide(p: PendingFlow, verdict: Verdict): void {
    if (!this.pending.take(p.flow.id)) return;
    const code = verdict.action === 'allow' ? NF_ACCEPT : NF_DROP;
    this.sendVerdicts(p.packetIds.map((id) => ({ id, verdict: code })));
    Atomics.add(this.view, slotOf(verdict), BigInt(p.packetIds.length));
    this.remember(p.key, verdict);
    if (verdict.action === 'block' && verdict.blockMode === 'reject') this.destroySocket(p.flow);
    this.tell({ type: 'verdict', id: p.flow.id, time: Date.now(), verdict });
    const { pending: _, ...flow } = p.flow;
    if (verdict.action === 'allow') this.live?.add({ ...flow, verdict });
    else this.blocked.begin({ ...flow, verdict }, p.packetIds.length);
  }

  /** The unwatched flows kept so far whose socket still exists (all of them when the sockets cannot
   *  be read), oldest first; the store is emptied. Ended ones are never decoded. */
  private takeOpenUnwatched(): FlowRecord[] {
    const open = this.live?.openSockets();
    const flows = open ? this.unwatchedKept.filter((f) => open(f.protocol, f.local, f.remote)) : this.unwatchedKept;
    for (const batch of this.unwatchedBatches) for (const u of decodeUnwatched(batch, open)) flows.push({ ...u.flow, verdict: u.verdict });
    this.unwatchedBatches = [];
    this.unwatchedKept = [];
    this.unwatchedCount = 0;
    return flows;
  }

  /** Keeps the unwatched flows whose socket still exists; if that is still too many, the oldest go. */
  private pruneUnwatched(): void {
    this.unwatchedKept = this.takeOpenUnwatched().slice(-MAX_UNWATCHED / 2);
    this.unwatchedCount = this.unwatchedKept.length;
  }

  /** Before a subscriber's snapshot: the flows allowed while nobody watched that are still open. */
  private adoptUnwatched(): void {
    if (this.unwatchedCount === 0 || !this.live) return;
    const flows = this.takeOpenUnwatched();
    for (const flow of flows) {
      this.nameFlow(flow);
      this.live.add(flow);
    }
  }

  private remember(key: string, verdict: Verdict): void {
    const now = Date.now();
    // Entries go in with one fixed lifetime, so the map's insertion order is expiry order: prune from
    // the front and stop at the first one still current (once full, a scan of the whole map on every
    // verdict cost tens of µs).
    this.recent.delete(key);
    for (const [k, r] of this.recent) {
      if (r.until > now && this.recent.size < RECENT_MAX) break;
      this.recent.delete(k);
    }
    this.recent.set(key, { verdict, until: now + RECENT_MS });
  }

  private sendVerdicts(verdicts: Array<{ id: number; verdict: number }>): void {
    if (!this.pool || verdicts.length === 0) return;
    const failed = this.pool.sendVerdicts(verdicts);
    if (failed > 0) Atomics.add(this.view, COUNTER.verdictErrors, BigInt(failed));
  }

  /** Destroys the flow's own socket (found by an exact lookup and named by its cookie: never a
   *  listener on the same port). True when it was there. */
  private destroySocket(flow: FlowRecord): boolean {
    if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') return false;
    try {
      return this.diag.destroy({
        protocol: flow.protocol,
        local: { address: addressBytes(flow.local.address), port: flow.local.port },
        remote: { address: addressBytes(flow.remote.address), port: flow.remote.port },
      });
    } catch {
      return false; // not permitted, or not supported by this kernel
    }
  }

  /** A UDP socket may serve other peers, so it is left alone: the flow's conntrack entry is deleted
   *  instead, which sends its next datagram back to the queue, where the remembered block drops it
   *  (until the remembered decision expires, or a rule that allows the flow applies first). */
  private endUdpFlow(flow: FlowRecord, verdict: Verdict): string {
    const local = { address: addressBytes(flow.local.address), port: flow.local.port };
    const remote = { address: addressBytes(flow.remote.address), port: flow.remote.port };
    const [src, dst] = flow.direction === 'inbound' ? [remote, local] : [local, remote];
    this.remember(flowKey({ protocol: 'udp', src: src.address, srcPort: src.port, dst: dst.address, dstPort: dst.port }), verdict);
    try {
      this.conntrack ??= new Conntrack();
      return this.conntrack.delete({ protocol: 'udp', src, dst })
        ? 'blocked while live: its next datagrams are dropped'
        : 'blocked while live: it had no tracked connection left; its next datagrams are dropped';
    } catch (error) {
      return `blocked while live, but its connection tracking entry could not be removed (${(error as Error).message}): datagrams may pass until it expires`;
    }
  }

  // ---- clients ----

  hello(): HelloMessage {
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      extension: { name: 'flowtop-agent', version: AGENT_VERSION },
      platform: 'linux',
      host: hostname(),
      capabilities: ['verdicts', 'end-flows', 'rules', 'bytes', 'verdict-durations', 'verdict-scopes', ...(this.dnsWorker ? ['host-names' as const] : [])],
      tokenKind: 'linux-pidfd-v1',
      mode: {
        failOpen: this.options.failOpen,
        attribution: this.method,
        timeoutMs: this.options.timeoutMs,
        ...effectivePolicy(this.options, this.options.rules.policy()),
      },
    };
  }

  private *snapshot(): Iterable<ExtensionMessage> {
    for (const p of this.pending.all()) yield { type: 'flow', flow: p.flow };
    if (!this.live) return;
    const counters: Array<{ id: string; rx: number; tx: number }> = [];
    for (const l of this.live.all()) {
      yield { type: 'flow', flow: l.flow };
      if (l.rx > 0 || l.tx > 0) counters.push({ id: l.flow.id, rx: l.rx, tx: l.tx });
    }
    // One message: the server splits a long counter list across lines.
    if (counters.length > 0) yield { type: 'bytes', counters, time: Date.now() };
    yield* this.ruleTalk.snapshot();
  }

  private onMessage(client: ServerClient, msg: RequestMessage): void {
    if (msg.type === 'verdict') return this.onVerdict(client, msg);
    this.ruleTalk.handle(client, msg);
  }

  private onVerdict(client: ServerClient, msg: ClientVerdictMessage): void {
    const p = this.pending.get(msg.id);
    if (!p) {
      const live = this.live?.get(msg.id);
      if (live && msg.action === 'block') return this.endLiveFlow(client, live.flow, msg);
      if (live) return void client.reply('not-pending', `flow "${msg.id}" is already allowed`, msg.ref);
      client.reply('unknown-flow', `no pending or live flow "${msg.id}" (already decided and ended, or never seen)`, msg.ref);
      return;
    }
    const blockMode = msg.blockMode ?? this.options.blockMode;
    const verdict: Verdict = { action: msg.action, by: 'user', ...(msg.action === 'block' ? { blockMode } : {}) };
    if (msg.remember === 'once') return this.decide(p, verdict);
    this.decideAndRemember(client, p, verdict, msg, blockMode).catch((error: unknown) => {
      this.log(`remembering a verdict failed: ${error instanceof Error ? error.message : String(error)}`);
      client.reply('internal', `the verdict could not be remembered: ${error instanceof Error ? error.message : String(error)}`, msg.ref);
    });
  }

  /** The rule is made while the flow is still held: its program cannot have exited yet (its connect
   *  is waiting on us), so its identity can still be verified. Deciding first would let a blocked
   *  program exit before its identity is read, and "always" could never be remembered. */
  private async decideAndRemember(client: ServerClient, p: PendingFlow, verdict: Verdict, msg: ClientVerdictMessage, blockMode: BlockMode): Promise<void> {
    const spec = await this.ruleSpecFor(p.flow, msg, blockMode);
    // The deadline or another client may have decided the flow meanwhile; a verdict is given once.
    if (this.pending.get(msg.id) === p) this.decide(p, verdict);
    if (typeof spec === 'string') return void client.reply('not-supported', spec, msg.ref);
    await this.ruleTalk.add(client, spec, msg.ref);
  }

  /** `block` on an allowed, live flow ends it: a TCP flow's socket is destroyed (the program sees
   *  ECONNABORTED at once); a UDP flow's next datagrams are dropped (see endUdpFlow). */
  private endLiveFlow(client: ServerClient, flow: FlowRecord, msg: ClientVerdictMessage): void {
    if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') {
      return void client.reply('not-supported', `only TCP and UDP flows can be ended; "${flow.id}" is ${flow.protocol}`, msg.ref);
    }
    const end = (): void => {
      const verdict: Verdict = flow.protocol === 'tcp'
        ? { action: 'block', by: 'user', blockMode: 'reject' }
        : { action: 'block', by: 'user', blockMode: 'drop' };
      const reason = flow.protocol === 'tcp'
        ? (this.destroySocket(flow) ? 'blocked while live: its socket was destroyed' : 'blocked while live: its socket had already closed')
        : this.endUdpFlow(flow, verdict);
      this.tell({ type: 'verdict', id: flow.id, time: Date.now(), verdict }, 'now');
      this.live?.end(flow.id, reason);
    };
    if (msg.remember === 'once') return end();
    // As for a held flow: read the identity before the socket is destroyed and the program exits.
    this.ruleSpecFor(flow, msg, msg.blockMode ?? this.options.blockMode).then(async (spec) => {
      end();
      if (typeof spec === 'string') return void client.reply('not-supported', spec, msg.ref);
      await this.ruleTalk.add(client, spec, msg.ref);
    }).catch((error: unknown) => {
      this.log(`ending a live flow failed: ${error instanceof Error ? error.message : String(error)}`);
      client.reply('internal', `the flow could not be ended: ${error instanceof Error ? error.message : String(error)}`, msg.ref);
    });
  }

  /** The rule a remembered verdict makes, or why none can be made (in words). */
  private async ruleSpecFor(flow: FlowRecord, msg: ClientVerdictMessage, blockMode: BlockMode): Promise<RuleSpec | string> {
    const remember = msg.remember === 'process' ? 'process' : 'always';
    // A token with exec tag 0 names the process but not the program that connected (owner found by a
    // /proc scan): a rule for "this process" would also let through whatever it execs next.
    if (remember === 'process' && flow.token && decodeLinuxToken(Buffer.from(flow.token, 'base64'))?.execTag === 0) {
      return 'cannot remember "process": the agent could not tell which program made this connection (its owner was found by a /proc scan), so a rule for the process would also cover any program it runs next';
    }
    let identity: RuleIdentity | undefined;
    let why = '';
    if (remember === 'always') {
      const attribution = flow.token && this.options.attribution ? (await this.options.attribution.resolve([Buffer.from(flow.token, 'base64')]))[0] : undefined;
      identity = attribution?.trust === 'secure' && attribution.identity ? identityFromKey(attribution.identity, attribution.name) : undefined;
      if (attribution?.reason) why = ` (${attribution.reason.message})`;
    }
    const spec = rememberedRule(
      { action: msg.action, remember, scope: msg.scope ?? 'process', forMs: msg.forMs, session: msg.session, blockMode },
      subjectOf(flow, identity),
      Date.now(),
    );
    return typeof spec === 'string' ? `cannot remember "${msg.remember}": ${spec}${why}` : spec;
  }

  // ---- status and shutdown ----

  counterValues(): AgentCounters {
    const v = (i: number): number => Number(Atomics.load(this.view, i));
    return {
      queued: v(COUNTER.queued),
      decidedByRule: v(COUNTER.rule),
      decidedByIdentityInWorker: v(COUNTER.identityInWorker),
      decidedByUser: v(COUNTER.user),
      decidedByDefault: v(COUNTER.default),
      unparsed: v(COUNTER.unparsed),
      ownerFound: v(COUNTER.ownerFound),
      ownerMissing: v(COUNTER.ownerMissing),
      verdictErrors: v(COUNTER.verdictErrors),
      pending: this.pending.size,
    };
  }

  status(): AgentStatus {
    return {
      pid: process.pid,
      started: this.started,
      socket: this.options.socketPath,
      queueNum: this.options.queueNum,
      failOpen: this.options.failOpen,
      defaultAction: this.defaultAction,
      timeoutMs: this.options.timeoutMs,
      blockMode: this.options.blockMode,
      firewall: this.firewall?.backend ?? 'none',
      attribution: this.method,
      attributionDetail: this.recorderNote ? `${this.methodDetail}; ${this.recorderNote}` : this.methodDetail,
      counters: this.counterValues(),
      clients: this.server?.clients.length ?? 0,
    };
  }

  private writeStatus(): void {
    try {
      this.files?.writeStatus(`${JSON.stringify(this.status())}\n`);
    } catch { /* status is best effort */ }
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
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.reapTimer) clearInterval(this.reapTimer);
    if (this.endedRulesTimer) clearInterval(this.endedRulesTimer);
    this.ruleTalk.stop();
    const step = async (what: string, run: () => unknown): Promise<void> => {
      try {
        await run();
      } catch (error) {
        this.log(`stopping: ${what} failed: ${(error as Error).message}`);
      }
    };
    await step('answering pending flows', () => {
      for (const p of this.pending.all()) this.decide(p, p.fallback ?? this.defaultVerdict('the agent stopped'));
    });
    await step('removing the firewall rules', () => this.firewall?.remove());
    await step('stopping the queue threads', () => this.pool?.stop());
    await step('stopping the DNS thread', async () => {
      if (!this.dnsWorker) return;
      const exited = new Promise((resolve) => this.dnsWorker!.once('exit', resolve));
      this.dnsControl?.port1.postMessage('stop');
      await Promise.race([exited, this.hurried, new Promise((r) => setTimeout(r, 2000))]);
      await this.dnsWorker.terminate();
    });
    await step('closing the DNS channel', () => this.dnsAnswers?.port1.close());
    await step('detaching the BPF programs', () => this.recorder?.close());
    await step('closing the traffic reader', () => this.live?.close());
    await step('closing sock_diag', () => this.diag.close());
    await step('closing conntrack', () => this.conntrack?.close());
    this.blocked.close();
    await step('closing the socket', () => this.server?.close());
    await step('removing the socket and status file', () => this.files?.remove());
  }
}

/** The status a running agent wrote, for `flowtop agent --status`; a string says why a file there was
 *  not believed. */
export function readStatus(file: string): AgentStatus | string | undefined {
  const read = readStatusFile(file);
  if (!read) return undefined;
  if ('problem' in read) return read.problem;
  try {
    return JSON.parse(read.text) as AgentStatus;
  } catch {
    return `${file} is not valid JSON: ignored`;
  }
}
