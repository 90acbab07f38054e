// A flow the recorder holds between its first event and the batch that writes its end.
import type { FlowRecord, Verdict } from '../protocol/messages.js';
import type { ProcessFacts } from './batch.js';
import { ACTION, BY, KIND_INBOUND, KIND_IPV6 } from './batch.js';
import { DECIDER_PREFIX, PROTOCOL_CODES } from './schema.js';

/** What a flow's row still needs, as bits of OpenFlow.flags. */
export const FLAG = {
  /** Its row was written. */
  posted: 1,
  /** In the recorder's list of flows changed since the last batch. */
  dirty: 2,
  /** Forgotten among too many open flows: no longer written. */
  dropped: 4,
  /** Its end was written (a flow kept for its lookup may be visited again after that). */
  endPosted: 8,
  /** Its program is settled (looked up, or given up on): its traffic can be counted under it. Until
   *  then its flow count and bytes wait, so they are not counted under "no owner" while the lookup is
   *  slow and left there when it answers. */
  settled: 16,
  /** Its start was counted in the buckets (flows + 1 in its start minute). */
  counted: 32,
  /** Open before recording began: its first counters are taken as the starting point. */
  baseline: 64,
  /** Host or verdict changed since the row was written. */
  changedHost: 128,
  changedVerdict: 256,
} as const;

/** One hidden class with its fields set in the constructor, the yes/no ones packed in `flags`: an
 *  object literal of this size cost about a microsecond per flow to make, and each field is memory
 *  kept for every open flow. */
export class OpenFlow {
  readonly id: string;
  readonly ref: number;
  readonly start: number;
  readonly seen: number;
  readonly kind: number;
  readonly raddr: string;
  readonly rport: number;
  readonly uid: number | undefined;
  readonly token: string | undefined;
  host: string | undefined;
  verdict: number;
  rule: string | undefined;
  agentIdentity: FlowRecord['identity'] | undefined;
  facts: ProcessFacts | undefined;
  /** Its program's bucket key (facts key and uid), made once its program is known. */
  bucketKey: string;
  flags: number;
  end: number | undefined;
  rx: number;
  tx: number;
  flushedRx: number;
  flushedTx: number;
  constructor(flow: FlowRecord, ref: number, seen: number, existing: boolean) {
    this.id = flow.id;
    this.ref = ref;
    this.start = flow.time;
    this.seen = seen;
    this.kind = Math.max(0, PROTOCOL_CODES.indexOf(flow.protocol)) | (flow.direction === 'inbound' ? KIND_INBOUND : 0) | (flow.family === 'ipv6' ? KIND_IPV6 : 0);
    this.raddr = flow.remote.address;
    this.rport = flow.remote.port;
    this.uid = flow.uid;
    this.token = flow.token;
    this.host = flow.remoteHost?.name;
    this.verdict = flow.verdict ? verdictCode(flow.verdict) : ACTION.observed;
    this.rule = flow.verdict ? verdictRef(flow.verdict) : undefined;
    this.agentIdentity = flow.identity;
    this.facts = undefined;
    this.bucketKey = '';
    this.flags = existing ? FLAG.baseline : 0;
    this.end = undefined;
    this.rx = 0;
    this.tx = 0;
    this.flushedRx = 0;
    this.flushedTx = 0;
  }

  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  set(flag: number): void {
    this.flags |= flag;
  }

  clear(flag: number): void {
    this.flags &= ~flag;
  }

  setFacts(facts: ProcessFacts): void {
    this.facts = facts;
    this.bucketKey = `${facts.key ?? ''}\0${this.uid ?? -1}`;
  }

  /** A verdict that differs from the one it has; false when it is the same. */
  setVerdict(verdict: Verdict): boolean {
    const code = verdictCode(verdict);
    const ref = verdictRef(verdict);
    if (code === this.verdict && ref === this.rule) return false;
    this.verdict = code;
    if (ref !== undefined) this.rule = ref;
    this.flags |= FLAG.changedVerdict;
    return true;
  }
}

/** What a flow's rule column refers to: the deciding rule, or the person who decided. */
function verdictRef(v: Verdict): string | undefined {
  if (v.ruleId !== undefined) return v.ruleId;
  return v.by === 'user' && v.decider !== undefined ? DECIDER_PREFIX + v.decider : undefined;
}

function verdictCode(v: Verdict): number {
  return (v.action === 'block' ? ACTION.block : ACTION.allow) | (BY[v.by] << 2);
}
