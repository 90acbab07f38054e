// The queue loop, on its own thread: a blocking netlink recv in Node's main thread would freeze the
// event loop. Per packet: parse → exact sock_diag lookup → BPF cookie record → pidfd-confirmed token →
// rules. Flows a rule decides get their verdict here, with no hop to the main thread, and are handed
// over afterwards in binary batches (decided-batch.ts); the rest are handed to the main thread at once,
// which then owns their verdict (clients, deadlines, default).
// Control messages arrive on a MessagePort read synchronously between batches (receiveMessageOnPort),
// so the loop never has to yield to an event loop.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { FlowRecord, Rule } from '../protocol/messages.js';
import { RecorderView } from '../native/linux/bpf.js';
import { NF_ACCEPT, NF_DROP, NfQueue, type QueuedPacket } from '../native/linux/nfqueue.js';
import { SockDiag } from '../native/linux/sock-diag.js';
import { RuleSet, type FlowFacts } from '../rules/matcher.js';
import { InodeIndex } from './inode-index.js';
import { findOwner, type LocalRemote, type Owner } from './owner.js';
import { TokenCache } from './token-cache.js';
import { poolPacketId } from './worker-pool.js';
import { pinToQueueCpus } from './affinity.js';
import { formatAddress } from '../net/address.js';
import { flowKey, parsePacket, type PacketTuple } from './packet.js';
import { DecidedBatchWriter, type DecidedFlow } from './decided-batch.js';
import { JudgeFailures } from './judge-failures.js';
import { COUNTER, LISTENERS_SLOT, type HeldFlow, type KnownIdentity, type MainToWorker, type WorkerConfig, type WorkerToMain } from './types.js';
import { NetlinkError } from '../native/linux/netlink.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { SelfInstance } from './self-exemption.js';
import { nameThisThread } from '../native/thread-name.js';

const NF_INET_LOCAL_IN = 1;
/** Flows a rule decided are posted to the main thread in batches of at most this many, never one
 *  message per connection: a post is a structured clone here and a wake-up of the main thread there. */
const DECIDED_BATCH = 256;
/** While someone watches (a client, the history, NATS), a batch leaves once its oldest flow is this
 *  old: a person sees a rule's flow within a few tens of ms (the TUI gathers events for 20–30 ms before
 *  it draws anyway), while one client's ~10,000 connections/s still make about 50 posts a second, not
 *  10,000. The receive waits at most WATCHED_WAIT_MS while a batch is open, so a batch is at most
 *  WATCHED_MAX_AGE_MS + WATCHED_WAIT_MS (30 ms) old when it leaves, even when traffic stops. */
const WATCHED_MAX_AGE_MS = 20;
const WATCHED_WAIT_MS = 10;
/** While nobody watches, the allowed flows are only kept for a later client: no hurry. */
const UNWATCHED_MAX_AGE_MS = 200;
/** The receive's wait otherwise: how soon stop and control messages are read when no packet comes. */
const IDLE_WAIT_MS = 100;

const config = (workerData as { config: WorkerConfig; control: MessagePort }).config;
const control = (workerData as { config: WorkerConfig; control: MessagePort }).control;
const counters = new BigInt64Array(config.counters);
const post = (m: WorkerToMain, transfer?: ArrayBuffer[]): void => parentPort!.postMessage(m, transfer);
nameThisThread(`flowtop-queue${config.queueIndex ?? 0}`);

let rules = new RuleSet([]);
const hits = new Map<string, number>();
let hitsPosted = Date.now();
let identityRules = false;
let stopping = false;
/** Code identities the main thread verified, by executable file key (see HeldFlow.exeKey). */
const identities = new Map<string, KnownIdentity>();
const IDENTITY_CAPACITY = 4096;

function applyControl(m: MainToWorker): void {
  if (m.type === 'stop') stopping = true;
  else if (m.type === 'identity') {
    identities.set(m.exeKey, m.known);
    if (identities.size > IDENTITY_CAPACITY) identities.delete(identities.keys().next().value as string);
  }
  else if (m.type === 'rules') {
    rules = new RuleSet(m.rules);
    identityRules = m.rules.some((r: Rule) => r.enabled && r.identity !== undefined);
  }
}

function drainControl(): void {
  for (let m = receiveMessageOnPort(control); m; m = receiveMessageOnPort(control)) applyControl(m.message as MainToWorker);
}

/** The agent's own process instance, when it has connections of its own to make (--nats). */
const self = config.selfToken !== undefined ? new SelfInstance(config.selfToken) : undefined;

const idPrefix = `q${config.queueNum}-${Date.now().toString(36)}-`;
/** Failures of the kernel's side of a verdict (a socket destroy, a verdict send), said rate-limited. */
const refusals = new RateLimitedLog((line) => post({ type: 'log', message: line }));


interface Judged {
  verdict?: { id: number; verdict: number };
  /** Decided by a rule: written to the batch after the verdict is sent. */
  decided?: DecidedFlow;
  held?: HeldFlow;
  destroy?: () => void;
}

function flowRecord(packetId: number, tuple: PacketTuple, direction: 'inbound' | 'outbound', ends: LocalRemote, remoteAddress: string, owner: Owner): FlowRecord {
  const flow: FlowRecord = {
    id: idPrefix + packetId,
    time: Date.now(),
    direction,
    protocol: tuple.protocol,
    family: tuple.family,
    local: { address: formatAddress(ends.local.address)!, port: ends.local.port }, // 4 or 16 bytes: parsePacket
    remote: { address: remoteAddress, port: ends.remote.port },
  };
  if (owner.tokenText !== undefined) flow.token = owner.tokenText;
  if (owner.pid !== undefined) flow.pid = owner.pid;
  if (owner.uid !== undefined) flow.uid = owner.uid;
  if (owner.error) flow.ownerError = owner.error;
  return flow;
}

function judge(deps: Parameters<typeof findOwner>[0], packet: QueuedPacket, listeners: boolean): Judged {
  const tuple = parsePacket(packet.payload);
  if (!tuple) {
    // Nothing to show or match: the default action decides, and is counted as such.
    Atomics.add(counters, COUNTER.unparsed, 1n);
    Atomics.add(counters, COUNTER.default, 1n);
    return { verdict: { id: packet.id, verdict: config.defaultAction === 'allow' ? NF_ACCEPT : NF_DROP } };
  }
  const inbound = packet.hook === NF_INET_LOCAL_IN;
  const ends: LocalRemote = inbound
    ? { local: { address: tuple.dst, port: tuple.dstPort }, remote: { address: tuple.src, port: tuple.srcPort } }
    : { local: { address: tuple.src, port: tuple.srcPort }, remote: { address: tuple.dst, port: tuple.dstPort } };
  const { local, remote } = ends;
  const owner = findOwner(deps, tuple, ends, packet.uid);
  Atomics.add(counters, owner.token ? COUNTER.ownerFound : COUNTER.ownerMissing, 1n);
  // The agent's own link to NATS: its verified owner is this very process instance (self-exemption.ts).
  if (self && !inbound && self.owns(owner.token)) {
    Atomics.add(counters, COUNTER.ownConnections, 1n);
    return { verdict: { id: packet.id, verdict: NF_ACCEPT } };
  }
  const direction = inbound ? 'inbound' : 'outbound';
  const remoteAddress = formatAddress(remote.address)!;
  const token = owner.tokenText;
  // The flow record is only built for a held flow: a rule decision costs no strings beyond the rule's
  // facts, its flow goes to the main thread as raw fields (decided-batch.ts).
  // Identity rules need the code identity: known here once the main thread has verified this very
  // executable file (same dev, inode, size, mtime, ctime) for an earlier flow; else it is asked.
  let exeKey: string | undefined;
  let known: KnownIdentity | undefined;
  if (identityRules && token !== undefined && owner.pid !== undefined) {
    exeKey = deps.tokens.fileKeyOf(owner.pid, owner.exeIno ?? 0n, owner.exeDev ?? 0n, owner.exeFile ?? 0n);
    if (exeKey !== undefined) known = identities.get(exeKey);
  }
  const mustAskMain = identityRules && token !== undefined && known === undefined;
  if (!mustAskMain) {
    const facts: FlowFacts = { protocol: tuple.protocol, direction, remoteAddress, remotePort: remote.port };
    if (token !== undefined) facts.token = token;
    if (known) {
      facts.trust = 'secure';
      facts.identity = known.identity;
      if (known.path !== undefined) facts.path = known.path;
    }
    const rule = rules.match(facts, Date.now());
    if (rule) {
      Atomics.add(counters, COUNTER.rule, 1n);
      if (known && rule.identity !== undefined) Atomics.add(counters, COUNTER.identityInWorker, 1n);
      hits.set(rule.id, (hits.get(rule.id) ?? 0) + 1);
      const blockMode = rule.blockMode ?? config.blockMode;
      const judged: Judged = { verdict: { id: packet.id, verdict: rule.action === 'allow' ? NF_ACCEPT : NF_DROP } };
      // While nobody listens, a blocked flow is told to no one (nor kept): only the allowed ones are
      // kept, for the live flows a later client is shown.
      if (listeners || rule.action === 'allow') {
        const d: DecidedFlow = { packetId: packet.id, time: Date.now(), protocol: tuple.protocol, family: tuple.family, direction, local, remote, ruleId: rule.id };
        if (rule.action === 'block') d.block = blockMode;
        if (owner.token) d.token = owner.token;
        if (owner.pid !== undefined) d.pid = owner.pid;
        if (owner.uid !== undefined) d.uid = owner.uid;
        if (owner.error) d.ownerError = owner.error;
        // the identity the rules were matched with (`flow.identity`)
        if (known?.flow) d.identity = known.flow;
        judged.decided = d;
      }
      if (rule.action === 'block' && blockMode === 'reject' && (tuple.protocol === 'tcp' || tuple.protocol === 'udp')) {
        const protocol = tuple.protocol;
        // a socket already gone is no failure (destroy says false); the kernel refusing is
        judged.destroy = () => {
          try {
            deps.diag.destroy({ protocol, local, remote });
          } catch (error) {
            if (!(error instanceof NetlinkError)) throw error;
            Atomics.add(counters, COUNTER.destroyErrors, 1n);
            refusals.say(`queue ${config.queueNum}: a flow blocked with reject was dropped, but its socket could not be destroyed (${error.message}), so its program waits for a timeout instead of seeing the refusal`);
          }
        };
      }
      return judged;
    }
  }
  const flow = flowRecord(packet.id, tuple, direction, ends, remoteAddress, owner);
  // A known identity is the one the rules were matched with: the flow carries it (`flow.identity`).
  if (known?.flow) flow.identity = known.flow;
  const held: HeldFlow = { packetId: poolPacketId(config.queueIndex ?? 0, packet.id), key: flowKey(tuple), flow, needsIdentity: mustAskMain };
  if (exeKey !== undefined) held.exeKey = exeKey;
  return { held };
}

function main(): void {
  let queue: NfQueue;
  try {
    queue = new NfQueue({ queueNum: config.queueNum, failOpen: config.failOpen, copyRange: 128, receiveTimeoutMs: 100 });
  } catch (error) {
    post({ type: 'fatal', message: `cannot bind NFQUEUE ${config.queueNum}: ${(error as Error).message}` });
    return;
  }
  const deps = {
    diag: new SockDiag(),
    recorder: config.cookieMap !== undefined && config.tupleMap !== undefined ? new RecorderView(config.cookieMap, config.tupleMap) : undefined,
    inodes: new InodeIndex(),
    tokens: new TokenCache(1024, (why) => post({ type: 'note', message: why })),
  };
  const judgeFailures = new JudgeFailures(counters, config.queueNum, config.defaultAction, (line) => post({ type: 'log', message: line }));
  pinToQueueCpus(config.queueIndex ?? 0, config.queueCount ?? 1);
  post({ type: 'ready', fd: queue.nl.fd, portId: queue.nl.portId });
  drainControl();
  const verdicts: Array<{ id: number; verdict: number }> = [];
  const destroys: Array<() => void> = [];
  let held: HeldFlow[] = [];
  const decided: DecidedFlow[] = [];
  const batch = new DecidedBatchWriter(idPrefix, DECIDED_BATCH);
  let batchStarted = 0;
  let listeners = false;
  let waitMs = IDLE_WAIT_MS;
  // Batched: a flow a rule decided should cost the queue loop as little as possible, watched or not.
  const postDecided = (force: boolean): void => {
    if (batch.length === 0) return;
    const maxAge = listeners ? WATCHED_MAX_AGE_MS : UNWATCHED_MAX_AGE_MS;
    if (!force && !batch.full && Date.now() - batchStarted < maxAge) return;
    const taken = batch.take();
    post({ type: 'decided', batch: taken }, [taken.bytes.buffer as ArrayBuffer]);
    Atomics.add(counters, COUNTER.decidedBatches, 1n);
    Atomics.add(counters, COUNTER.decidedHandedOver, BigInt(taken.count));
  };
  // Each datagram is answered as soon as it is judged: one more recv to gather a batch would add a
  // syscall to every connection's latency, and the verdict's own cost (the kernel reinjects the packet
  // and runs the handshake in this thread) dwarfs the send it would save.
  const flush = (): void => {
    if (verdicts.length > 0) {
      try {
        queue.sendVerdicts(verdicts);
      } catch (error) {
        if (!(error instanceof NetlinkError)) throw error;
        Atomics.add(counters, COUNTER.verdictErrors, BigInt(verdicts.length));
        refusals.say(`queue ${config.queueNum}: ${verdicts.length} verdicts could not be sent (${error.message}): those packets stay held in the queue`);
      }
      verdicts.length = 0;
    }
    for (const d of destroys) d();
    destroys.length = 0;
    // held flows leave at once: a person may be asked about them, and their packets wait
    if (held.length > 0) {
      post({ type: 'held', held });
      held = [];
    }
    for (const d of decided) {
      if (batch.full) postDecided(true);
      if (batch.length === 0) batchStarted = Date.now();
      batch.add(d);
    }
    decided.length = 0;
    postDecided(false);
  };
  while (!stopping) {
    // While a watched batch is open, the receive returns soon enough for it to leave on time.
    const wantWaitMs = listeners && batch.length > 0 ? WATCHED_WAIT_MS : IDLE_WAIT_MS;
    if (wantWaitMs !== waitMs) {
      try {
        queue.setReceiveTimeout(wantWaitMs);
        waitMs = wantWaitMs;
      } catch (error) {
        if (!(error instanceof NetlinkError)) throw error;
        refusals.say(`queue ${config.queueNum}: cannot change the receive timeout (${error.message}): flows a rule decided may reach the clients later`);
      }
    }
    let packets: QueuedPacket[] | undefined;
    try {
      packets = queue.receive(false);
    } catch (error) {
      // ENOBUFS cannot happen (NETLINK_NO_ENOBUFS); anything else ends the loop and the agent says so
      post({ type: 'fatal', message: `NFQUEUE receive: ${(error as Error).message}` });
      break;
    }
    if (packets) {
      // rules and identities posted while this thread slept in recv apply to these packets already
      drainControl();
      listeners = Atomics.load(counters, LISTENERS_SLOT) !== 0n;
      for (const packet of packets) {
        Atomics.add(counters, COUNTER.queued, 1n);
        let j: Judged;
        try {
          j = judge(deps, packet, listeners);
        } catch (error) {
          // A packet we fail to judge still gets exactly one answer: the default, counted as a failure.
          judgeFailures.failed(error);
          j = { verdict: { id: packet.id, verdict: config.defaultAction === 'allow' ? NF_ACCEPT : NF_DROP } };
        }
        if (j.verdict) verdicts.push(j.verdict);
        if (j.destroy) destroys.push(j.destroy);
        if (j.decided) decided.push(j.decided);
        if (j.held) held.push(j.held);
      }
      flush();
    } else {
      listeners = Atomics.load(counters, LISTENERS_SLOT) !== 0n;
      postDecided(false);
    }
    drainControl();
    if (hits.size > 0 && Date.now() - hitsPosted >= 1000) {
      post({ type: 'hits', hits: [...hits] });
      hits.clear();
      hitsPosted = Date.now();
    }
  }
  if (hits.size > 0) post({ type: 'hits', hits: [...hits] });
  postDecided(true);
  deps.diag.close();
  deps.tokens.clear();
  // Unbinding makes the kernel drop what is still queued for us; the main thread has answered its
  // own held packets before asking us to stop.
  queue.close();
}

main();
