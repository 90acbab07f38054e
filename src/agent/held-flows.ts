// The flows the queue threads hand the main thread, and their verdicts. A decided flow is published
// (or kept for a later client while nobody watches); a held packet is answered from a decision just
// given (a retransmit), or becomes a pending flow that a rule, a policy switch (settle.ts), a client,
// its process's death or its deadline decides — once, for all its packets — and the clients are told.
import type { Attribution } from '../attribution/types.js';
import type { FlowRecord, Verdict } from '../protocol/messages.js';
import { NF_ACCEPT, NF_DROP } from '../native/linux/nfqueue.js';
import { flowIdentityFromKey } from '../rules/model.js';
import { BlockedConversations } from './blocked-conversations.js';
import { defaultActionOf } from './effective-policy.js';
import type { FlowNames } from './flow-names.js';
import type { AgentIo, QueueWorkers } from './io.js';
import { destroyFlowSocket } from './live-ending.js';
import { endTime, type LiveFlows } from './live-flows.js';
import type { AgentEvent, EndedFlow } from './observers.js';
import type { AgentOptions } from './options.js';
import { PendingTable, type PendingFlow } from './pending.js';
import { RateLimitedLog, describeError } from './rate-limited-log.js';
import { RecentVerdicts } from './recent-verdicts.js';
import { settle, wantsAttribution } from './settle.js';
import type { SharedCounters } from './status.js';
import { COUNTER, type HeldFlow } from './types.js';
import type { DecidedBatch } from './decided-batch.js';
import { decodeDecided, type DecidedRecords } from './decided-records.js';
import type { UnwatchedFlows } from './unwatched-flows.js';
import { TaughtIdentities } from './worker-rules.js';
import { PublishedIdentities } from './published-identities.js';

/** Room for the addresses of one closed-socket lookup (reused: the lookup keeps nothing). */
const LOCAL_WORDS = new Uint32Array(4);
const REMOTE_WORDS = new Uint32Array(4);

export interface HeldFlowsDeps {
  io: Pick<AgentIo, 'clock' | 'destroySocket' | 'ownerGone'>;
  options: Pick<AgentOptions, 'timeoutMs' | 'blockMode' | 'defaultAction' | 'rules' | 'attribution' | 'establishIdentities'>;
  counters: SharedCounters;
  names: FlowNames;
  unwatched: UnwatchedFlows;
  live(): LiveFlows | undefined;
  pool(): QueueWorkers | undefined;
  /** Whether any rule is keyed by code identity (see worker-rules.ts). */
  identityRules(): boolean;
  /** Whether a client is subscribed or an observer listens. */
  watched(): boolean;
  /** Whether flows that ended before they were published are told whole (Audience.endedWhole). */
  endedWhole(): boolean;
  tell(event: AgentEvent, when?: 'now' | 'soon'): void;
  tellEnded(flow: EndedFlow): void;
  log(line: string): void;
}

export class HeldFlows {
  readonly pending: PendingTable;
  readonly recent = new RecentVerdicts();
  /** Blocked flows by conversation: a blocked sender's next packets count on one flow. */
  readonly blocked: BlockedConversations;
  private readonly taught = new TaughtIdentities();
  private readonly rejectFailures: RateLimitedLog;
  /** With establishIdentities: decided flows' identities, resolved after they are published. */
  private readonly identities?: PublishedIdentities;
  /** What takeEnded tells, filled in for each flow. */
  private readonly endedFlow: EndedFlow = {
    time: 0, end: 0, direction: 'outbound', protocol: 'tcp', family: 'ipv4', remote: { address: '', port: 0 }, remoteHost: undefined,
    verdict: { action: 'allow', by: 'rule', ruleId: undefined }, token: undefined, pid: undefined, uid: undefined, ownerError: undefined, identity: undefined, rx: 0, tx: 0,
  };

  constructor(private readonly deps: HeldFlowsDeps) {
    if (deps.options.establishIdentities && deps.options.attribution) {
      this.identities = new PublishedIdentities(deps.options.attribution, (e) => deps.tell(e), deps.log);
    }
    this.rejectFailures = new RateLimitedLog(deps.log, 10_000, deps.io.clock.now);
    this.pending = new PendingTable((p) => this.decide(p, p.fallback ?? this.defaultVerdict('nobody answered in time')), deps.io.clock);
    this.blocked = new BlockedConversations((flow) => deps.tell({ type: 'flow', flow }));
  }

  /** A queue thread's batch of flows its rules decided (their packets answered already). */
  receiveDecided(batch: DecidedBatch): void {
    const d = this.deps;
    d.names.drain();
    // Decoding costs main-thread time: decided flows are only published while someone listens. Those
    // allowed by rule while nobody watched are only kept (unwatched-flows.ts); a batch that arrives
    // just after a client subscribed is published like any decided flow.
    if (d.watched()) {
      const live = d.live();
      live?.readClosed();
      const take = live && d.endedWhole() ? this.takeEnded(live) : undefined;
      for (const flow of decodeDecided(batch, take ? { take } : {})) this.publishDecided(flow);
    } else d.unwatched.add(batch);
  }

  /** Takes the allowed TCP flows whose sockets closed before their batch got here, telling them
   *  whole: no flow object, no events, never live. */
  private takeEnded(live: LiveFlows): (r: DecidedRecords, i: number) => boolean {
    const end = this.deps.io.clock.now(); // when the close time is not known
    const flow = this.endedFlow;
    return (r, i) => {
      if (r.action(i) !== 'allow' || r.protocol(i) !== 'tcp') return false;
      const inbound = r.inbound(i);
      const last = live.closedBefore(r.keyWords(i, 'local', LOCAL_WORDS), r.port(i, 'local'), r.keyWords(i, 'remote', REMOTE_WORDS), r.port(i, 'remote'), !inbound);
      if (!last) return false;
      // every field set each time: one object, reused (observers copy what they keep)
      flow.time = r.time(i);
      flow.end = endTime(flow, last, end);
      flow.direction = inbound ? 'inbound' : 'outbound';
      flow.family = r.family(i);
      flow.remote.address = r.remoteAddress(i);
      flow.remote.port = r.port(i, 'remote');
      flow.remoteHost = this.deps.names.hostOf(flow.remote.address);
      flow.verdict.ruleId = r.ruleId(i);
      flow.token = r.token(i);
      flow.pid = r.pid(i);
      flow.uid = r.uid(i);
      flow.ownerError = r.ownerError(i);
      flow.identity = r.identity(i);
      flow.rx = last.rx;
      flow.tx = last.tx;
      this.deps.tellEnded(flow);
      return true;
    };
  }

  /** A queue thread's flows that the main thread decides. */
  receiveHeld(held: HeldFlow[]): void {
    const d = this.deps;
    d.names.drain();
    const now = d.io.clock.now();
    for (const h of held) {
      d.names.name(h.flow);
      // A retransmitted SYN (or next datagram) of a flow just decided: the same answer, not a new prompt.
      const recent = this.recent.get(h.key, now);
      if (recent) {
        this.sendVerdicts([{ id: h.packetId, verdict: recent.action === 'allow' ? NF_ACCEPT : NF_DROP }]);
        d.counters.decided(recent);
        if (recent.action === 'block') this.blocked.count(h.flow);
        continue;
      }
      const p = this.pending.add(h.key, h.flow, h.packetId, d.options.timeoutMs);
      if (!p) continue; // joined a flow that already waits
      this.identities?.fill(p.flow);
      d.tell({ type: 'flow', flow: p.flow }, 'now');
      this.settle(p, h.needsIdentity, h.exeKey).catch((error: unknown) => d.log(`settling flow ${p.flow.id} failed (the deadline decides it): ${error instanceof Error ? error.message : String(error)}`));
    }
  }

  private publishDecided(flow: FlowRecord & { verdict: Verdict }): void {
    // The next datagram (or retried SYN) of a conversation already blocked: counted on its flow.
    if (flow.verdict.action === 'block' && this.blocked.count(flow)) return;
    this.deps.names.name(flow);
    this.identities?.fill(flow);
    this.deps.tell({ type: 'flow', flow });
    this.identities?.add(flow);
    if (flow.verdict.action === 'allow') this.deps.live()?.add(flow);
    else this.blocked.begin(flow);
  }

  /** A flow the worker could not decide: its identity is resolved first when a rule or switch needs
   *  it (here, off the worker), then settle.ts decides, or leaves it to a person or the deadline. */
  private async settle(p: PendingFlow, needsIdentity: boolean, exeKey?: string): Promise<void> {
    const { options, io } = this.deps;
    const policy = options.rules.policy();
    let attribution: Attribution | undefined;
    // With --nats every flow's identity is established; one already known for this process instance
    // (identities.fill) needs no lookup unless a rule or switch needs the attribution itself.
    const wanted = wantsAttribution(needsIdentity, this.deps.identityRules(), policy) || (options.establishIdentities && !p.flow.identity);
    if (wanted && p.flow.token && options.attribution) {
      try {
        [attribution] = await options.attribution.resolve([Buffer.from(p.flow.token, 'base64')]);
      } catch (error) {
        attribution = { trust: 'insecure', reason: { call: 'resolve', message: (error as Error).message } };
      }
      const lesson = this.taught.teach(exeKey, attribution);
      if (lesson) this.deps.pool()?.post(lesson);
      // The identity the agent established for this very token, before its program could exit: the
      // flow carries it from now on, so a client whose own lookup comes too late can still show it.
      const identity = attribution?.trust === 'secure' && attribution.identity ? flowIdentityFromKey(attribution.identity, attribution.path) : undefined;
      if (identity && p.flow.token) this.identities?.remember(p.flow.token, identity);
      const stillPending = this.pending.get(p.flow.id) === p;
      if (identity && stillPending) {
        p.flow.identity = identity;
        this.deps.tell({ type: 'flow', flow: p.flow }, 'now');
      } else if (identity && options.establishIdentities) {
        // Decided meanwhile (a person was quicker than the lookup): the live flow still gains it.
        const live = this.deps.live()?.get(p.flow.id)?.flow;
        if (live && !live.identity) {
          live.identity = identity;
          this.deps.tell({ type: 'flow', flow: live });
        }
      }
      if (!stillPending) return;
    }
    const s = settle(p.flow, attribution, {
      match: (facts) => options.rules.match(facts, io.clock.now()),
      policy: { ...policy, defaultAction: this.defaultAction },
      blockMode: options.blockMode,
    });
    if (s.kind === 'fallback') p.fallback = s.verdict;
    else if (s.kind !== 'wait') this.decide(p, s.verdict);
  }

  /** Answers every packet of a pending flow, once, and tells the clients. */
  decide(p: PendingFlow, verdict: Verdict): void {
    if (!this.pending.take(p.flow.id)) return;
    const code = verdict.action === 'allow' ? NF_ACCEPT : NF_DROP;
    this.sendVerdicts(p.packetIds.map((id) => ({ id, verdict: code })));
    this.deps.counters.decided(verdict, p.packetIds.length);
    const now = this.deps.io.clock.now();
    this.recent.remember(p.key, verdict, now);
    if (verdict.action === 'block' && verdict.blockMode === 'reject') this.reject(p.flow);
    this.deps.tell({ type: 'verdict', id: p.flow.id, time: now, verdict });
    const { pending: _, ...flow } = p.flow;
    if (verdict.action === 'allow') this.deps.live()?.add({ ...flow, verdict });
    else this.blocked.begin({ ...flow, verdict }, p.packetIds.length);
  }

  /** A rejected flow's socket is destroyed, so its program fails at once; if the kernel refuses, the
   *  dropped packet still stops it, later. */
  private reject(flow: FlowRecord): void {
    try {
      const outcome = destroyFlowSocket(this.deps.io, flow);
      if (outcome?.result === 'refused') {
        this.deps.counters.add(COUNTER.destroyErrors, 1);
        this.rejectFailures.say(`rejecting flow ${flow.id}: its socket could not be destroyed (${outcome.errno}); its packet was dropped`);
      }
    } catch (error) {
      this.rejectFailures.say(`rejecting flow ${flow.id}: ${describeError(error)}`);
    }
  }

  /** Pending flows whose process died get the default now, with the reason: nobody waits for them. */
  reap(): void {
    if (this.pending.size === 0) return;
    for (const p of this.pending.all()) {
      const reason = this.deps.io.ownerGone(p.flow);
      if (reason) this.decide(p, { ...(p.fallback ?? this.defaultVerdict(reason)), reason });
    }
  }

  /** Every pending flow gets what its deadline would give it (the agent is stopping). */
  answerAll(reason: string): void {
    for (const p of this.pending.all()) this.decide(p, p.fallback ?? this.defaultVerdict(reason));
  }

  /** The action when nobody decides: the stricter of `--default` and the rules file's policy. */
  get defaultAction(): Verdict['action'] {
    return defaultActionOf(this.deps.options, this.deps.options.rules.policy());
  }

  private defaultVerdict(reason: string): Verdict {
    const action = this.defaultAction;
    return { action, by: 'default', policy: 'defaultAction', reason, ...(action === 'block' ? { blockMode: this.deps.options.blockMode } : {}) };
  }

  private sendVerdicts(verdicts: Array<{ id: number; verdict: number }>): void {
    const pool = this.deps.pool();
    if (!pool || verdicts.length === 0) return;
    const failed = pool.sendVerdicts(verdicts);
    if (failed > 0) this.deps.counters.add(COUNTER.verdictErrors, failed);
  }
}
