// The flows the recorder holds between their first event and the batch that writes their end, as
// columns: one slot per flow in typed arrays (and plain arrays for the texts), found by flow id. At
// 20,000 flows a second an object per flow, kept about a second, cost the garbage collector about as
// much as the recorder's own work; a slot costs it nothing.
import type { FlowRecord, Verdict } from '../protocol/messages.js';
import type { ProcessFacts } from './batch.js';
import { ACTION, BY, KIND_INBOUND, KIND_IPV6 } from './batch.js';
import { DECIDER_PREFIX, PROTOCOL_CODES } from './schema.js';

/** What a flow's row still needs, as bits of flags[slot]. */
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
  /** Waiting in a program lookup's list (program-lookups.ts). */
  awaited: 512,
  /** No longer found by its id (ended and written, or dropped): the slot is free once it is in no
   *  list (neither dirty nor awaited). */
  gone: 1024,
} as const;

const FIRST_CAPACITY = 1024;

/** What a slot takes from a flow. */
export type FlowFacts = Pick<FlowRecord, 'time' | 'uid' | 'protocol' | 'direction' | 'family' | 'remote' | 'remoteHost' | 'verdict' | 'token' | 'identity'>;

export class OpenFlows {
  private readonly byId = new Map<string, number>();
  private capacity = 0;
  private readonly free: number[] = [];
  private used = 0;
  ref: Float64Array = new Float64Array(0);
  start: Float64Array = new Float64Array(0);
  seen: Float64Array = new Float64Array(0);
  /** NaN while open. */
  end: Float64Array = new Float64Array(0);
  rx: Float64Array = new Float64Array(0);
  tx: Float64Array = new Float64Array(0);
  flushedRx: Float64Array = new Float64Array(0);
  flushedTx: Float64Array = new Float64Array(0);
  /** NaN when unknown. */
  uid: Float64Array = new Float64Array(0);
  kind: Int32Array = new Int32Array(0);
  rport: Int32Array = new Int32Array(0);
  verdict: Int32Array = new Int32Array(0);
  flags: Int32Array = new Int32Array(0);
  readonly id: Array<string | undefined> = [];
  readonly raddr: Array<string | undefined> = [];
  readonly host: Array<string | undefined> = [];
  readonly rule: Array<string | undefined> = [];
  readonly token: Array<string | undefined> = [];
  readonly agentIdentity: Array<FlowRecord['identity'] | undefined> = [];
  readonly facts: Array<ProcessFacts | undefined> = [];
  /** Its program's bucket key (facts key and uid), made once its program is known. */
  readonly bucketKey: string[] = [];
  private lastFacts?: ProcessFacts;
  private lastUid = Number.NaN;
  private lastKey = '';

  /** Flows found by id (open, or ended and not yet written). */
  get size(): number {
    return this.byId.size;
  }

  find(id: string): number | undefined {
    return this.byId.get(id);
  }

  /** A flow's slot, found by `id` from now on (never, without one: a flow told whole, ended). */
  add(id: string | undefined, flow: FlowFacts, ref: number, seen: number, existing: boolean): number {
    const s = this.free.length > 0 ? this.free.pop()! : this.next();
    if (id !== undefined) this.byId.set(id, s);
    this.ref[s] = ref;
    this.start[s] = flow.time;
    this.seen[s] = seen;
    this.end[s] = Number.NaN;
    this.rx[s] = this.tx[s] = this.flushedRx[s] = this.flushedTx[s] = 0;
    this.uid[s] = flow.uid ?? Number.NaN;
    this.kind[s] = Math.max(0, PROTOCOL_CODES.indexOf(flow.protocol)) | (flow.direction === 'inbound' ? KIND_INBOUND : 0) | (flow.family === 'ipv6' ? KIND_IPV6 : 0);
    this.rport[s] = flow.remote.port;
    this.verdict[s] = flow.verdict ? verdictCode(flow.verdict) : ACTION.observed;
    this.flags[s] = existing ? FLAG.baseline : 0;
    this.id[s] = id;
    this.raddr[s] = flow.remote.address;
    this.host[s] = flow.remoteHost?.name;
    this.rule[s] = flow.verdict ? verdictRef(flow.verdict) : undefined;
    this.token[s] = flow.token;
    this.agentIdentity[s] = flow.identity;
    this.facts[s] = undefined;
    this.bucketKey[s] = '';
    return s;
  }

  has(s: number, flag: number): boolean {
    return (this.flags[s]! & flag) !== 0;
  }

  set(s: number, flag: number): void {
    this.flags[s]! |= flag;
  }

  clear(s: number, flag: number): void {
    this.flags[s]! &= ~flag;
  }

  setFacts(s: number, facts: ProcessFacts): void {
    this.facts[s] = facts;
    const uid = this.uid[s]!;
    // a program's flows come in runs: its key is made once per run, not once per flow
    if (facts !== this.lastFacts || !Object.is(uid, this.lastUid)) {
      this.lastFacts = facts;
      this.lastUid = uid;
      this.lastKey = `${facts.key ?? ''}\0${uid === uid ? uid : -1}`;
    }
    this.bucketKey[s] = this.lastKey;
  }

  /** A verdict that differs from the one it has; false when it is the same. */
  setVerdict(s: number, verdict: Verdict): boolean {
    const code = verdictCode(verdict);
    const ref = verdictRef(verdict);
    if (code === this.verdict[s] && ref === this.rule[s]) return false;
    this.verdict[s] = code;
    if (ref !== undefined) this.rule[s] = ref;
    this.flags[s]! |= FLAG.changedVerdict;
    return true;
  }

  /** No longer found by its id; its slot is given back once it is in no list. */
  forget(s: number): void {
    const id = this.id[s];
    if (id !== undefined && this.byId.get(id) === s) this.byId.delete(id);
    this.flags[s]! |= FLAG.gone;
    this.release(s);
  }

  /** Gives the slot back if it is gone and in no list (call after taking it off one). */
  release(s: number): void {
    if ((this.flags[s]! & (FLAG.gone | FLAG.dirty | FLAG.awaited)) !== FLAG.gone) return;
    this.flags[s] = 0;
    this.id[s] = this.raddr[s] = this.host[s] = this.rule[s] = this.token[s] = undefined;
    this.agentIdentity[s] = undefined;
    this.facts[s] = undefined;
    this.bucketKey[s] = '';
    this.free.push(s);
  }

  /** The oldest `n` flows still found by id, forgotten (marked dropped); how many were. */
  dropOldest(n: number): number {
    const oldest: number[] = [];
    for (const s of this.byId.values()) {
      if (oldest.length >= n) break;
      oldest.push(s);
    }
    for (const s of oldest) {
      this.flags[s]! |= FLAG.dropped;
      this.forget(s);
    }
    return oldest.length;
  }

  private next(): number {
    if (this.used === this.capacity) this.grow();
    return this.used++;
  }

  private grow(): void {
    const capacity = Math.max(FIRST_CAPACITY, this.capacity * 2);
    const f64 = (a: Float64Array): Float64Array => {
      const b = new Float64Array(capacity);
      b.set(a);
      return b;
    };
    const i32 = (a: Int32Array): Int32Array => {
      const b = new Int32Array(capacity);
      b.set(a);
      return b;
    };
    this.ref = f64(this.ref);
    this.start = f64(this.start);
    this.seen = f64(this.seen);
    this.end = f64(this.end);
    this.rx = f64(this.rx);
    this.tx = f64(this.tx);
    this.flushedRx = f64(this.flushedRx);
    this.flushedTx = f64(this.flushedTx);
    this.uid = f64(this.uid);
    this.kind = i32(this.kind);
    this.rport = i32(this.rport);
    this.verdict = i32(this.verdict);
    this.flags = i32(this.flags);
    this.capacity = capacity;
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
