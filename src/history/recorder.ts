// Turns the stream of flow events (protocol v1's flow, verdict, bytes and end — the agent's observer
// events, or the passive monitor's) into history batches. Runs on the thread that sees the events and
// only keeps them in memory: every FLUSH_MS a batch goes to the writer (its own thread), so the event
// path never waits on the disk. A flow's program is looked up once per process token (the attribution
// backend, in batches, one lookup at a time); its row waits up to RESOLVE_WAIT_MS for that answer.
import type { Attribution } from '../attribution/types.js';
import type { BytesMessage, EndMessage, FlowMessage, FlowRecord, RuleChangedMessage, Verdict, VerdictMessage } from '../protocol/messages.js';
import { identityKey } from '../rules/model.js';
import type { FlowChange, HistoryBatch, HostBucket, ProcessBucket, ProcessFacts, RowColumns } from './batch.js';
import { ACTION, BY, KIND_INBOUND, KIND_IPV6, ROW, ROW_FIELDS } from './batch.js';
import { DECIDER_PREFIX, PROTOCOL_CODES, TRUST_CODES } from './schema.js';

export type RecordedEvent = FlowMessage | VerdictMessage | BytesMessage | EndMessage | RuleChangedMessage;

export interface RecorderOptions {
  /** Where batches go (a HistorySink's write). */
  write: (batch: HistoryBatch) => void;
  /** Looks up the processes behind tokens; without it, flows are kept with what they say themselves. */
  resolve?: (tokens: Uint8Array[]) => Promise<Attribution[]>;
  flushMs?: number;
  now?: () => number;
}

const FLUSH_MS = 250;
/** A row waits this long for its program's lookup, then is written without it and completed when the
 *  answer comes (a first lookup can take seconds: the executable hashed, the package database read);
 *  short, so a killed agent loses at most about a second of flows. */
const RESOLVE_WAIT_MS = 500;
/** Flows written before their lookup answered, by token, for the answer to complete them and to
 *  count their traffic under their program; past this, later ones are counted under "no owner". */
const MAX_AWAITING = 50_000;
/** A lookup that has not answered by then is given up on: its flows' traffic is counted without an
 *  owner (their rows stay as written). */
const BUCKET_WAIT_MS = 30_000;
/** A new flow's row is held this long before it is first written, so a flow that ends within it is
 *  written once, whole (start, end and bytes), instead of inserted and then updated. */
const HOLD_MS = 300;
/** Traffic buckets are summed over this long before they go to the writer: a busy program or host
 *  is then one row update per second instead of one per batch (a killed agent loses at most this
 *  much of the per-minute traffic, as it does of flows). */
const BUCKETS_EVERY_MS = 1_000;
/** A batch goes out at once past this many changed flows. */
const MAX_BATCH = 10_000;
const MAX_CACHED_TOKENS = 20_000;
/** Flows remembered for their later verdict, bytes and end; past this the oldest are forgotten. */
const MAX_OPEN = 200_000;
const MAX_RESOLVE_BATCH = 512;
const UNKNOWN_FACTS: ProcessFacts = Object.freeze({ trust: TRUST_CODES.indexOf('unknown') });
/** Programs numbered for the writer (each sent once); past this the numbering starts afresh. */
const MAX_FACTS_IDS = 50_000;
/** Texts (addresses, host names, rule ids) numbered for the writer, each sent once: past this many
 *  the recorder forgets them and numbers them again as they come (numbers are never reused, so every
 *  number a batch uses is among the newest MAX_TEXT_IDS; the writer keeps twice as many). */
export const MAX_TEXT_IDS = 50_000;

/** A flow the recorder holds. A class (one hidden class, fields set in its constructor): an object
 *  literal of this size cost about a microsecond per flow to make. */
class OpenFlow {
  readonly id: string;
  ref: number;
  start: number;
  seen: number;
  kind: number;
  raddr: string;
  rport: number;
  host: string | undefined;
  verdict: number;
  rule: string | undefined;
  uid: number | undefined;
  token: string | undefined;
  agentIdentity: FlowRecord['identity'] | undefined;
  facts: ProcessFacts | undefined;
  posted: boolean;
  /** In the dirty list. */
  dirty: boolean;
  /** Forgotten among too many open flows: no longer written. */
  dropped: boolean;
  /** Its program's bucket key (facts key and uid), made once its program is known. */
  bucketKey: string;
  /** Its end was written (a flow kept for its lookup may be visited again after that). */
  endPosted: boolean;
  /** Its program is settled (looked up, or given up on): its traffic can be counted under it. Until
   *  then its flow count and bytes wait, so they are not counted under "no owner" while the lookup
   *  is slow and left there when it answers. */
  settled: boolean;
  /** Its start was counted in the buckets (flows + 1 in its start minute). */
  counted: boolean;
  /** Open before recording began: its first counters are taken as the starting point. */
  baseline: boolean;
  /** Fields changed since the row was written. */
  changedHost: boolean;
  changedVerdict: boolean;
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
    this.host = flow.remoteHost?.name;
    this.verdict = flow.verdict ? verdictCode(flow.verdict) : ACTION.observed;
    this.rule = flow.verdict ? verdictRef(flow.verdict) : undefined;
    this.uid = flow.uid;
    this.token = flow.token;
    this.agentIdentity = flow.identity;
    this.facts = undefined;
    this.end = undefined;
    this.posted = false;
    this.dirty = false;
    this.dropped = false;
    this.bucketKey = '';
    this.endPosted = false;
    this.settled = false;
    this.counted = false;
    this.baseline = existing;
    this.changedHost = false;
    this.changedVerdict = false;
    this.rx = 0;
    this.tx = 0;
    this.flushedRx = 0;
    this.flushedTx = 0;
  }
}

export interface RecorderCounts {
  flows: number;
  batches: number;
  forgotten: number;
}

export class HistoryRecorder {
  private readonly flows = new Map<string, OpenFlow>();
  /** Flows changed since their last batch (each once: its `dirty` flag). */
  private dirty: OpenFlow[] = [];
  private readonly facts = new Map<string, ProcessFacts | null>();
  private readonly toResolve = new Set<string>();
  private readonly awaiting = new Map<string, { since: number; flows: OpenFlow[] }>();
  private awaitingCount = 0;
  private completions: FlowChange[] = [];
  /** The number each program's facts go by in batches (sent whole the first time only). */
  private readonly factsIds = new Map<ProcessFacts, number>();
  private nextFactsId = 1;
  private readonly textIds = new Map<string, number>();
  private nextTextId = 0;
  /** The facts of flows the agent identified itself, by identity and lookup (factsOf). */
  private readonly agentFacts = new Map<string, ProcessFacts>();
  private resolving = false;
  /** Traffic summed since the buckets last went out, by minute, then by the flow's bucket key
   *  (program and user) or remote. */
  private processes = new Map<number, Map<string, ProcessBucket>>();
  private hosts = new Map<number, Map<string, HostBucket>>();
  private bucketsSent = 0;
  private nextRef = 1;
  private timer?: NodeJS.Timeout;
  private soon = false;
  private closed = false;
  private readonly now: () => number;
  readonly counts: RecorderCounts = { flows: 0, batches: 0, forgotten: 0 };

  constructor(private readonly options: RecorderOptions) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.flush(), options.flushMs ?? FLUSH_MS);
    this.timer.unref();
  }

  /** One event; returns at once (the shape of the agent's observer). `existing`: a flow that was open
   *  before recording began (a source's snapshot): its first counters are a baseline, not traffic
   *  of this minute (the bytes it moved earlier were counted by an earlier recording, or never). */
  observe(event: RecordedEvent, existing = false): void {
    if (this.closed) return;
    switch (event.type) {
      case 'flow': return this.onFlow(event.flow, existing);
      case 'verdict': return this.onVerdict(event.id, event.verdict);
      case 'bytes':
        for (const c of event.counters) this.onBytes(c.id, c.rx, c.tx);
        return;
      case 'end': return this.onEnd(event.id, event.time);
      default: return; // rule changes: a rule's first block is seen on the flow it blocked
    }
  }

  private onFlow(flow: FlowRecord, existing: boolean): void {
    const known = this.flows.get(flow.id);
    if (known) {
      if (flow.remoteHost && flow.remoteHost.name !== known.host) {
        known.host = flow.remoteHost.name;
        known.changedHost = true;
      }
      if (flow.identity && !known.agentIdentity) {
        known.agentIdentity = flow.identity;
        if (!known.posted) known.facts = undefined;
      }
      if (flow.verdict) this.setVerdict(known, flow.verdict);
      this.touch(known);
      return;
    }
    const o = new OpenFlow(flow, this.nextRef++, this.now(), existing);
    this.flows.set(flow.id, o);
    this.counts.flows++;
    if (o.token !== undefined && this.options.resolve && !this.facts.has(o.token)) this.toResolve.add(o.token);
    if (this.flows.size > MAX_OPEN) this.forgetOldest();
    this.touch(o);
  }

  private setVerdict(o: OpenFlow, verdict: Verdict): void {
    const code = verdictCode(verdict);
    const ref = verdictRef(verdict);
    if (code === o.verdict && ref === o.rule) return;
    o.verdict = code;
    if (ref !== undefined) o.rule = ref;
    o.changedVerdict = true;
  }

  private onVerdict(id: string, verdict: Verdict): void {
    const o = this.flows.get(id);
    if (!o) return;
    this.setVerdict(o, verdict);
    this.touch(o);
  }

  private onBytes(id: string, rx: number, tx: number): void {
    const o = this.flows.get(id);
    if (!o || !(rx >= o.rx) || !(tx >= o.tx)) return;
    o.rx = rx;
    o.tx = tx;
    if (o.baseline) {
      o.baseline = false;
      o.flushedRx = rx;
      o.flushedTx = tx;
    }
    this.touch(o);
  }

  private onEnd(id: string, time: number): void {
    const o = this.flows.get(id);
    if (!o) return;
    o.end = time;
    this.touch(o);
  }

  private touch(o: OpenFlow): void {
    if (!o.dirty) {
      o.dirty = true;
      this.dirty.push(o);
    }
    if (this.dirty.length >= MAX_BATCH && !this.soon) {
      this.soon = true;
      setImmediate(() => {
        this.soon = false;
        this.flush();
      });
    }
  }

  /** Sends what changed since the last batch (rows still held or waiting for their program stay,
   *  unless `all`). */
  flush(all = false): void {
    this.startResolving();
    if (this.dirty.length === 0 && this.completions.length === 0) return;
    const now = this.now();
    const minute = Math.floor(now / 60_000);
    this.giveUpWaiting(now);
    const list = this.dirty;
    this.dirty = [];
    // New rows as columns: at most one per dirty flow.
    const numbers = new Float64Array(list.length * ROW_FIELDS);
    let rowCount = 0;
    const firstText = this.nextTextId;
    const texts: string[] = [];
    const textIds = this.textIds;
    const textId = (text: string | undefined): number => {
      if (text === undefined) return -1;
      let id = textIds.get(text);
      if (id === undefined) {
        if (textIds.size >= MAX_TEXT_IDS) textIds.clear();
        id = this.nextTextId++;
        textIds.set(text, id);
        texts.push(text);
      }
      return id;
    };
    const newFacts: RowColumns['facts'] = [];
    const factsId = (facts: ProcessFacts): number => {
      let id = this.factsIds.get(facts);
      if (id === undefined) {
        if (this.factsIds.size >= MAX_FACTS_IDS) this.factsIds.clear();
        id = this.nextFactsId++;
        this.factsIds.set(facts, id);
        newFacts.push({ id, facts });
      }
      return id;
    };
    const changes: FlowChange[] = this.completions;
    this.completions = [];
    const ended: number[] = [];
    const processes = this.processes;
    const hosts = this.hosts;
    const addProcess = (m: number, o: OpenFlow, rx: number, tx: number, flows: number): void => {
      let byKey = processes.get(m);
      if (!byKey) processes.set(m, byKey = new Map());
      const b = byKey.get(o.bucketKey);
      if (b) {
        b.rx += rx; b.tx += tx; b.flows += flows;
      } else {
        const facts = o.facts!;
        byKey.set(o.bucketKey, { minute: m, ...(facts.key !== undefined ? { key: facts.key, facts } : {}), uid: o.uid ?? -1, rx, tx, flows });
      }
    };
    const addHost = (m: number, host: string, rx: number, tx: number, flows: number): void => {
      let byHost = hosts.get(m);
      if (!byHost) hosts.set(m, byHost = new Map());
      const b = byHost.get(host);
      if (b) {
        b.rx += rx; b.tx += tx; b.flows += flows;
      } else {
        byHost.set(host, { minute: m, host, rx, tx, flows });
      }
    };
    for (const o of list) {
      if (o.dropped) continue;
      if (!all && !o.posted && o.end === undefined && now - o.seen < HOLD_MS) {
        this.dirty.push(o);
        continue;
      }
      let facts = o.facts;
      if (!facts) {
        const f = this.factsOf(o, now);
        if (!f) { // its program's lookup is still under way
          this.dirty.push(o);
          continue;
        }
        this.setFacts(o, f);
        facts = f;
        const waits = this.lookupPending(o) && this.await(o);
        // the agent's own identity for the flow names its program already: only its parent waits
        o.settled = !waits || (o.agentIdentity !== undefined && f.key !== undefined);
      }
      o.dirty = false;
      const remote = o.host ?? o.raddr;
      if (!o.posted) {
        const at = rowCount++ * ROW_FIELDS;
        numbers[at + ROW.ref] = o.ref;
        numbers[at + ROW.start] = o.start;
        numbers[at + ROW.end] = o.end ?? Number.NaN;
        numbers[at + ROW.facts] = factsId(facts);
        numbers[at + ROW.uid] = o.uid ?? Number.NaN;
        numbers[at + ROW.kind] = o.kind;
        numbers[at + ROW.raddr] = textId(o.raddr);
        numbers[at + ROW.rport] = o.rport;
        numbers[at + ROW.host] = textId(o.host);
        numbers[at + ROW.verdict] = o.verdict;
        numbers[at + ROW.rule] = textId(o.rule);
        const counted = o.rx > 0 || o.tx > 0 || o.end !== undefined;
        numbers[at + ROW.rx] = counted ? o.rx : Number.NaN;
        numbers[at + ROW.tx] = counted ? o.tx : Number.NaN;
        o.posted = true;
        o.endPosted = o.end !== undefined;
      } else if (o.end !== undefined && !o.endPosted && !o.changedHost && !o.changedVerdict) {
        ended.push(o.ref, o.end, o.rx, o.tx);
        o.endPosted = true;
      } else if ((o.end !== undefined && !o.endPosted) || o.changedHost || o.changedVerdict) {
        changes.push({
          ref: o.ref,
          ...(o.end !== undefined && !o.endPosted ? { end: o.end, rx: o.rx, tx: o.tx } : {}),
          ...(o.changedHost && o.host !== undefined ? { host: o.host } : {}),
          ...(o.changedVerdict ? { verdict: o.verdict, ...(o.rule !== undefined ? { rule: o.rule } : {}) } : {}),
        });
        o.endPosted = o.end !== undefined;
      }
      o.changedHost = o.changedVerdict = false;
      if (o.settled) {
        if (!o.counted) {
          const startMinute = Math.floor(o.start / 60_000);
          addProcess(startMinute, o, 0, 0, 1);
          addHost(startMinute, remote, 0, 0, 1);
          o.counted = true;
        }
        const drx = o.rx - o.flushedRx;
        const dtx = o.tx - o.flushedTx;
        if (drx > 0 || dtx > 0) {
          addProcess(minute, o, drx, dtx, 0);
          addHost(minute, remote, drx, dtx, 0);
          o.flushedRx = o.rx;
          o.flushedTx = o.tx;
        }
      }
      if (o.end !== undefined) this.forget(o);
    }
    const bucketsDue = processes.size + hosts.size > 0 && (all || now - this.bucketsSent >= BUCKETS_EVERY_MS || now < this.bucketsSent);
    if (rowCount === 0 && changes.length === 0 && ended.length === 0 && !bucketsDue) return;
    this.counts.batches++;
    const batch: HistoryBatch = { rows: [], changes, processes: [], hosts: [] };
    if (bucketsDue) {
      batch.processes = [...processes.values()].flatMap((m) => [...m.values()]);
      batch.hosts = [...hosts.values()].flatMap((m) => [...m.values()]);
      this.processes = new Map();
      this.hosts = new Map();
      this.bucketsSent = now;
    }
    // (a copy when shorter: a view would carry its whole buffer to the writer)
    if (rowCount > 0) batch.columns = { numbers: rowCount * ROW_FIELDS === numbers.length ? numbers : numbers.slice(0, rowCount * ROW_FIELDS), firstText, texts, facts: newFacts };
    if (ended.length > 0) batch.ended = Float64Array.from(ended);
    this.options.write(batch);
  }

  /** Past MAX_OPEN, the oldest tenth goes in one pass (one at a time, each would skip every entry
   *  deleted before it). A forgotten flow's later end or bytes are not recorded. */
  private forgetOldest(): void {
    let n = MAX_OPEN / 10;
    for (const [id, o] of this.flows) {
      if (n-- <= 0) break;
      this.flows.delete(id);
      this.counts.forgotten++;
      o.dropped = true;
    }
  }

  private forget(o: OpenFlow): void {
    if (this.flows.get(o.id) === o) this.flows.delete(o.id);
  }

  /** The flow's program: from the lookup of its token (undefined while under way, unless waited long
   *  enough), with the agent's own identity for it taking precedence. */
  private factsOf(o: OpenFlow, now: number): ProcessFacts | undefined {
    let looked: ProcessFacts | null | undefined;
    if (o.token !== undefined && this.options.resolve) {
      looked = this.facts.get(o.token);
      if (looked === undefined && now - o.seen < RESOLVE_WAIT_MS) return undefined;
    }
    const base: ProcessFacts = looked ?? UNKNOWN_FACTS;
    if (!o.agentIdentity) return base;
    const key = identityKey({ kind: o.agentIdentity.kind, value: o.agentIdentity.value, ...(o.agentIdentity.package !== undefined ? { package: o.agentIdentity.package } : {}) });
    if (key === undefined) return base;
    const path = o.agentIdentity.path ?? base.path;
    // One object per program and lookup, so batches refer to it by number (flush).
    const cacheKey = `${key}\0${path ?? ''}\0${o.agentIdentity.package ?? ''}\0${looked ? o.token ?? '' : ''}`;
    const cached = this.agentFacts.get(cacheKey);
    if (cached) return cached;
    const facts: ProcessFacts = {
      ...base, key, trust: TRUST_CODES.indexOf('secure'),
      ...(path !== undefined ? { path } : {}),
      ...(o.agentIdentity.package !== undefined ? { package: o.agentIdentity.package } : {}),
      ...(base.name === undefined && path !== undefined ? { name: path.slice(path.lastIndexOf('/') + 1) } : {}),
    };
    if (this.agentFacts.size >= MAX_CACHED_TOKENS) this.agentFacts.clear();
    this.agentFacts.set(cacheKey, facts);
    return facts;
  }

  private startResolving(): void {
    if (this.resolving || this.toResolve.size === 0 || !this.options.resolve) return;
    const tokens = [...this.toResolve].slice(0, MAX_RESOLVE_BATCH);
    for (const t of tokens) this.toResolve.delete(t);
    this.resolving = true;
    this.options.resolve(tokens.map((t) => Buffer.from(t, 'base64')))
      .then((results) => tokens.forEach((t, i) => this.remember(t, results[i] ? factsFromAttribution(results[i]!) : null)))
      .catch(() => tokens.forEach((t) => this.remember(t, null)))
      .finally(() => {
        this.resolving = false;
      });
  }

  private setFacts(o: OpenFlow, facts: ProcessFacts): void {
    o.facts = facts;
    o.bucketKey = `${facts.key ?? ''}\0${o.uid ?? -1}`;
  }

  private lookupPending(o: OpenFlow): boolean {
    return o.token !== undefined && this.options.resolve !== undefined && !this.facts.has(o.token);
  }

  /** Keeps a flow written before its program's lookup answered, for the answer; false when too many
   *  already wait (it is then counted as it is). */
  private await(o: OpenFlow): boolean {
    if (this.awaitingCount >= MAX_AWAITING || o.token === undefined) return false;
    const waiting = this.awaiting.get(o.token);
    if (waiting) waiting.flows.push(o);
    else this.awaiting.set(o.token, { since: o.seen, flows: [o] });
    this.awaitingCount++;
    return true;
  }

  /** The answer for a token: the rows written without it are completed, and their traffic (held
   *  back meanwhile) is counted under the program in the next batch. */
  private remember(token: string, facts: ProcessFacts | null): void {
    this.facts.set(token, facts);
    this.settle(token, true);
    if (this.facts.size > MAX_CACHED_TOKENS) {
      let n = MAX_CACHED_TOKENS / 10;
      for (const key of this.facts.keys()) {
        if (n-- <= 0) break;
        this.facts.delete(key);
      }
    }
  }

  private settle(token: string, answered: boolean): void {
    const waiting = this.awaiting.get(token);
    if (!waiting) return;
    this.awaiting.delete(token);
    this.awaitingCount -= waiting.flows.length;
    const now = this.now();
    for (const o of waiting.flows) {
      if (answered) {
        const f = this.factsOf(o, now);
        if (f && (f.key !== o.facts?.key || f.trust !== o.facts?.trust || f.parent !== o.facts?.parent)) {
          this.setFacts(o, f);
          this.completions.push({ ref: o.ref, facts: f });
        }
      }
      o.settled = true;
      this.touch(o);
    }
  }

  /** Lookups that have not answered in BUCKET_WAIT_MS: their flows are counted as they are. */
  private giveUpWaiting(now: number): void {
    for (const [token, waiting] of this.awaiting) {
      if (now - waiting.since < BUCKET_WAIT_MS) break; // in the order they began waiting
      this.settle(token, false);
    }
  }

  /** Sends the last batch (flows still waiting for their program go without it). */
  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    for (const o of this.dirty) if (!o.facts) this.setFacts(o, this.factsOf(o, Number.POSITIVE_INFINITY)!);
    for (const token of [...this.awaiting.keys()]) this.settle(token, false);
    for (const o of this.dirty) o.settled = true;
    this.flush(true);
    this.closed = true;
  }
}

/** What the flow's rule column refers to: the deciding rule, or the person who decided. */
function verdictRef(v: Verdict): string | undefined {
  if (v.ruleId !== undefined) return v.ruleId;
  return v.by === 'user' && v.decider !== undefined ? DECIDER_PREFIX + v.decider : undefined;
}

function verdictCode(v: Verdict): number {
  return (v.action === 'block' ? ACTION.block : ACTION.allow) | (BY[v.by] << 2);
}

export function factsFromAttribution(a: Attribution): ProcessFacts {
  const trust = TRUST_CODES.indexOf(a.trust === 'pending' ? 'unknown' : a.trust);
  const key = a.trust === 'secure' && a.identity ? a.identity : a.path ? `path:${a.path}` : a.name ? `name:${a.name}` : undefined;
  const parent = a.parents?.[0];
  return {
    trust,
    ...(key !== undefined ? { key } : {}),
    ...(a.name !== undefined ? { name: a.name } : {}),
    ...(a.path !== undefined ? { path: a.path } : {}),
    ...(a.sha256 !== undefined ? { sha256: a.sha256 } : {}),
    ...(a.signer?.package !== undefined ? { package: a.signer.package } : {}),
    ...(parent ? { parent: parent.path ?? parent.name } : {}),
  };
}
