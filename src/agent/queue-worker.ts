// The queue loop, on its own thread: a blocking netlink recv in Node's main thread would freeze the
// event loop. Per packet: parse → exact sock_diag lookup → BPF cookie record → pidfd-confirmed token →
// rules. Flows a rule decides get their verdict here, with no hop to the main thread; the rest are
// handed to the main thread, which then owns their verdict (clients, deadlines, default).
// Control messages arrive on a MessagePort read synchronously between batches (receiveMessageOnPort),
// so the loop never has to yield to an event loop.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import type { FlowRecord, Rule, Verdict } from '../protocol/messages.js';
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
import { UnwatchedBatchWriter, type UnwatchedFlow } from './unwatched-batch.js';
import { JudgeFailures } from './judge-failures.js';
import { COUNTER, LISTENERS_SLOT, type HeldFlow, type KnownIdentity, type MainToWorker, type WorkerConfig, type WorkerToMain } from './types.js';
import { NetlinkError } from '../native/linux/netlink.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { SelfInstance } from './self-exemption.js';

const NF_INET_LOCAL_IN = 1;
/** Flows allowed while nobody watches are posted in batches of this many, or when the oldest has waited
 *  this long (the receive times out every 100 ms, so the wait is bounded even when traffic stops). */
const UNWATCHED_BATCH = 256;
const UNWATCHED_MAX_AGE_MS = 200;

const config = (workerData as { config: WorkerConfig; control: MessagePort }).config;
const control = (workerData as { config: WorkerConfig; control: MessagePort }).control;
const counters = new BigInt64Array(config.counters);
const post = (m: WorkerToMain, transfer?: ArrayBuffer[]): void => parentPort!.postMessage(m, transfer);

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
  decided?: { flow: FlowRecord; verdict: Verdict };
  /** Allowed by rule while no client listens: batched to the main thread's live flows. */
  unwatched?: UnwatchedFlow;
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
  // The flow record is only built when someone will read it: a held flow, or a decided one while a
  // client listens. A rule decision with nobody watching costs no strings beyond the rule's facts.
  // Identity rules need the code identity: known here once the main thread has verified this very
  // executable file (same dev, inode, size, mtime, ctime) for an earlier flow; else it is asked.
  let exeKey: string | undefined;
  let known: KnownIdentity | undefined;
  if (identityRules && token !== undefined && owner.pid !== undefined) {
    exeKey = deps.tokens.fileKeyOf(owner.pid, owner.exeIno ?? 0n, owner.exeDev ?? 0n, owner.exeFile ?? 0n);
    if (exeKey !== undefined) known = identities.get(exeKey);
  }
  // A known identity is the one the rules were matched with: the flow carries it (`flow.identity`).
  const makeFlow = (): FlowRecord => {
    const flow = flowRecord(packet.id, tuple, direction, ends, remoteAddress, owner);
    if (known?.flow) flow.identity = known.flow;
    return flow;
  };
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
      const verdict: Verdict = { action: rule.action, by: 'rule', ruleId: rule.id };
      const blockMode = rule.blockMode ?? config.blockMode;
      if (rule.action === 'block') verdict.blockMode = blockMode;
      const judged: Judged = { verdict: { id: packet.id, verdict: rule.action === 'allow' ? NF_ACCEPT : NF_DROP } };
      if (listeners) judged.decided = { flow: makeFlow(), verdict };
      else if (rule.action === 'allow') {
        // raw fields only: written to the batch after the verdict is sent, decoded by the main thread
        // only if a client ever asks
        const u: UnwatchedFlow = { packetId: packet.id, time: Date.now(), protocol: tuple.protocol, family: tuple.family, direction, local, remote, ruleId: rule.id };
        if (owner.token) u.token = owner.token;
        if (owner.pid !== undefined) u.pid = owner.pid;
        if (owner.uid !== undefined) u.uid = owner.uid;
        if (owner.error) u.ownerError = owner.error;
        judged.unwatched = u;
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
  const held: HeldFlow = { packetId: poolPacketId(config.queueIndex ?? 0, packet.id), key: flowKey(tuple), flow: makeFlow(), needsIdentity: mustAskMain };
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
  let decided: Array<{ flow: FlowRecord; verdict: Verdict }> = [];
  const unwatched: UnwatchedFlow[] = [];
  const batch = new UnwatchedBatchWriter(idPrefix, UNWATCHED_BATCH);
  let batchStarted = 0;
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
    for (const u of unwatched) {
      if (batch.full) postUnwatched(true);
      if (batch.length === 0) batchStarted = Date.now();
      batch.add(u);
    }
    unwatched.length = 0;
    if (held.length > 0 || decided.length > 0) {
      post({ type: 'flows', held, decided });
      held = [];
      decided = [];
    }
    postUnwatched(false);
  };
  // Batched: a connection nobody watches should cost the queue loop as little as possible.
  const postUnwatched = (force: boolean): void => {
    if (batch.length === 0) return;
    if (!force && !batch.full && Date.now() - batchStarted < UNWATCHED_MAX_AGE_MS) return;
    const taken = batch.take();
    post({ type: 'flows', held: [], decided: [], unwatched: taken }, [taken.bytes.buffer as ArrayBuffer]);
  };
  while (!stopping) {
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
      const listeners = Atomics.load(counters, LISTENERS_SLOT) !== 0n;
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
        if (j.unwatched) unwatched.push(j.unwatched);
        if (j.held) held.push(j.held);
      }
      flush();
    } else postUnwatched(false);
    drainControl();
    if (hits.size > 0 && Date.now() - hitsPosted >= 1000) {
      post({ type: 'hits', hits: [...hits] });
      hits.clear();
      hitsPosted = Date.now();
    }
  }
  if (hits.size > 0) post({ type: 'hits', hits: [...hits] });
  postUnwatched(true);
  deps.diag.close();
  deps.tokens.clear();
  // Unbinding makes the kernel drop what is still queued for us; the main thread has answered its
  // own held packets before asking us to stop.
  queue.close();
}

main();
