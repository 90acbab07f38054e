// Messages between the agent's main thread and its queue worker, and the shared counters.
import type { Action, BlockMode, FlowIdentity, FlowRecord, Rule } from '../protocol/messages.js';
import type { DecidedBatch } from './decided-batch.js';

export type AttributionMethod = 'bpf-cookie' | 'inode-scan';

export interface WorkerConfig {
  queueNum: number;
  failOpen: boolean;
  defaultAction: Action;
  blockMode: BlockMode;
  /** Recorder map fds opened by the main thread (fds belong to the process), absent without BPF. */
  cookieMap?: number;
  tupleMap?: number;
  counters: SharedArrayBuffer;
  /** Which of the pool's queues this worker reads (0 for the first): held packet ids carry it. */
  queueIndex?: number;
  /** How many queues the pool reads (the worker keeps to the CPUs the kernel maps to its queue). */
  queueCount?: number;
  /** The agent's own token (base64): outbound flows this very process instance opened pass (see
   *  self-exemption.ts). */
  selfToken?: string;
}

/** Indexes into the shared counters (BigInt64Array). */
export const COUNTER = { queued: 0, rule: 1, user: 2, default: 3, unparsed: 4, ownerFound: 5, ownerMissing: 6, verdictErrors: 7, identityInWorker: 9, judgeErrors: 10, destroyErrors: 11, ownConnections: 12, decidedBatches: 13, decidedHandedOver: 14 } as const;
/** Not a counter: 1 while a client is subscribed or an observer listens. Flows a rule decided go to the
 *  main thread in batches either way (posting every one cost ~15 µs per connection); while someone
 *  listens a batch leaves within tens of milliseconds and carries the blocked flows too, while nobody
 *  does it carries only the allowed ones (kept for a client that subscribes later) and may wait longer. */
export const LISTENERS_SLOT = 8;
export const COUNTER_SLOTS = 15;

/** A flow the worker could not decide alone: the main thread owns its packet's verdict. */
export interface HeldFlow {
  packetId: number;
  /** Same 5-tuple ⇒ same key: retransmitted SYNs and further UDP datagrams join the pending flow. */
  key: string;
  flow: FlowRecord;
  /** True when the rules could not be matched in the worker (identity rules need the attribution). */
  needsIdentity: boolean;
  /** dev:inode:size:mtime:ctime of the executable, read in the worker when identity rules exist: once
   *  the main thread has verified the identity of that file, it tells the workers, which then match
   *  identity rules for it themselves. */
  exeKey?: string;
}

/** The verified code identity of one executable file (by its exeKey), as identity rules match it. */
export interface KnownIdentity {
  identity: string;
  path?: string;
  /** The same identity as a flow message carries it (`flow.identity`). */
  flow?: FlowIdentity;
}

export type WorkerToMain =
  | { type: 'ready'; fd: number; portId: number }
  | { type: 'fatal'; message: string }
  /** Flows the main thread must decide (a person may be waiting): posted as soon as they are seen. */
  | { type: 'held'; held: HeldFlow[] }
  /** Flows a rule decided in the queue thread (their packets answered already), batched. */
  | { type: 'decided'; batch: DecidedBatch }
  /** Something the agent should say once (e.g. it stopped trusting the connect records' fields). */
  | { type: 'note'; message: string }
  /** A line for the agent's log only (not its status): e.g. a packet it failed to judge. */
  | { type: 'log'; message: string }
  /** Hits of rules the worker decided with, batched (about once a second). */
  | { type: 'hits'; hits: Array<[ruleId: string, count: number]> };

export type MainToWorker =
  | { type: 'rules'; rules: Rule[] }
  | { type: 'identity'; exeKey: string; known: KnownIdentity }
  | { type: 'stop' };
