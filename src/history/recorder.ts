// Turns the stream of flow events (protocol v1's flow, verdict, bytes and end — the agent's observer
// events, or the passive monitor's) into history batches. Runs on the thread that sees the events and
// only keeps them in memory: every FLUSH_MS a batch goes to the writer (its own thread), so the event
// path never waits on the disk. A flow's program comes from program-lookups.ts; its row waits a
// little for that answer.
import type { FlowRecord } from '../protocol/messages.js';
import type { BytesMessage, EndMessage, FlowMessage, RuleChangedMessage, VerdictMessage } from '../protocol/messages.js';
import type { FlowChange, HistoryBatch, ProcessFacts, RowColumns } from './batch.js';
import { MAX_TEXT_IDS, ROW, ROW_FIELDS } from './batch.js';
import { FLAG, OpenFlow } from './open-flow.js';
import { ProgramLookups, type Resolve } from './program-lookups.js';
import { TrafficSums } from './traffic-sums.js';

export { factsFromAttribution } from './program-lookups.js';

export type RecordedEvent = FlowMessage | VerdictMessage | BytesMessage | EndMessage | RuleChangedMessage;

export interface RecorderOptions {
  /** Where batches go (a HistorySink's write). */
  write: (batch: HistoryBatch) => void;
  /** Looks up the processes behind tokens; without it, flows are kept with what they say themselves. */
  resolve?: Resolve;
  flushMs?: number;
  now?: () => number;
}

const FLUSH_MS = 250;
/** A new flow's row is held this long before it is first written, so a flow that ends within it is
 *  written once, whole (start, end and bytes), instead of inserted and then updated. */
const HOLD_MS = 300;
/** Traffic sums go to the writer this often: a busy program or host is then one row update per
 *  second instead of one per batch (a killed agent loses at most this much of the per-minute
 *  traffic, as it does of flows). */
const SUMS_EVERY_MS = 1_000;
/** A batch goes out at once past this many changed flows. */
const MAX_BATCH = 10_000;
/** Flows remembered for their later verdict, bytes and end; past this the oldest are forgotten. */
const MAX_OPEN = 200_000;
/** Programs numbered for the writer (each sent once); past this the numbering starts afresh. */
const MAX_FACTS_IDS = 50_000;

export interface RecorderCounts {
  flows: number;
  batches: number;
  forgotten: number;
}

export class HistoryRecorder {
  private readonly flows = new Map<string, OpenFlow>();
  /** Flows changed since their last batch (each once: its `dirty` flag). */
  private dirty: OpenFlow[] = [];
  private readonly lookups: ProgramLookups;
  private completions: FlowChange[] = [];
  /** The number each program's facts go by in batches (sent whole the first time only). */
  private readonly factsIds = new Map<ProcessFacts, number>();
  private nextFactsId = 1;
  private readonly textIds = new Map<string, number>();
  private nextTextId = 0;
  private readonly sums = new TrafficSums();
  private sumsSent = 0;
  private nextRef = 1;
  private timer?: NodeJS.Timeout;
  private soon = false;
  private closed = false;
  private readonly now: () => number;
  readonly counts: RecorderCounts = { flows: 0, batches: 0, forgotten: 0 };

  constructor(private readonly options: RecorderOptions) {
    this.now = options.now ?? Date.now;
    this.lookups = new ProgramLookups(options.resolve, this.now, (o, facts) => {
      if (facts) this.completions.push({ ref: o.ref, facts });
      this.touch(o);
    });
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
      case 'verdict': {
        const o = this.flows.get(event.id);
        if (o && o.setVerdict(event.verdict)) this.touch(o);
        return;
      }
      case 'bytes':
        for (const c of event.counters) this.onBytes(c.id, c.rx, c.tx);
        return;
      case 'end': {
        const o = this.flows.get(event.id);
        if (!o) return;
        o.end = event.time;
        this.touch(o);
        return;
      }
      default: return; // rule changes: a rule's first block is seen on the flow it blocked
    }
  }

  private onFlow(flow: FlowRecord, existing: boolean): void {
    const known = this.flows.get(flow.id);
    if (known) {
      if (flow.remoteHost && flow.remoteHost.name !== known.host) {
        known.host = flow.remoteHost.name;
        known.set(FLAG.changedHost);
      }
      if (flow.identity && !known.agentIdentity) {
        known.agentIdentity = flow.identity;
        if (!known.has(FLAG.posted)) known.facts = undefined;
      }
      if (flow.verdict) known.setVerdict(flow.verdict);
      this.touch(known);
      return;
    }
    const o = new OpenFlow(flow, this.nextRef++, this.now(), existing);
    this.flows.set(flow.id, o);
    this.counts.flows++;
    this.lookups.want(o.token);
    if (this.flows.size > MAX_OPEN) this.forgetOldest();
    this.touch(o);
  }

  private onBytes(id: string, rx: number, tx: number): void {
    const o = this.flows.get(id);
    if (!o || !(rx >= o.rx) || !(tx >= o.tx)) return;
    o.rx = rx;
    o.tx = tx;
    if (o.has(FLAG.baseline)) {
      o.clear(FLAG.baseline);
      o.flushedRx = rx;
      o.flushedTx = tx;
    }
    this.touch(o);
  }

  private touch(o: OpenFlow): void {
    if (!o.has(FLAG.dirty)) {
      o.set(FLAG.dirty);
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
    this.lookups.start();
    if (this.dirty.length === 0 && this.completions.length === 0 && this.sums.empty) return;
    const now = this.now();
    const minute = Math.floor(now / 60_000);
    this.lookups.giveUp(now);
    const list = this.dirty;
    this.dirty = [];
    const rows = new RowBuilder(list.length, this);
    const changes: FlowChange[] = this.completions;
    this.completions = [];
    const ended: number[] = [];
    for (const o of list) {
      if (o.has(FLAG.dropped)) continue;
      if (!all && !o.has(FLAG.posted) && o.end === undefined && now - o.seen < HOLD_MS) {
        this.dirty.push(o);
        continue;
      }
      if (!o.facts) {
        const f = this.lookups.factsOf(o, now);
        if (!f) { // its program's lookup is still under way
          this.dirty.push(o);
          continue;
        }
        o.setFacts(f);
        const waits = this.lookups.pending(o) && this.lookups.await(o);
        // the agent's own identity for the flow names its program already: only its parent waits
        if (!waits || (o.agentIdentity !== undefined && f.key !== undefined)) o.set(FLAG.settled);
      }
      o.clear(FLAG.dirty);
      const endNew = o.end !== undefined && !o.has(FLAG.endPosted);
      if (!o.has(FLAG.posted)) {
        rows.add(o);
        o.set(FLAG.posted | (o.end !== undefined ? FLAG.endPosted : 0));
      } else if (endNew && !o.has(FLAG.changedHost | FLAG.changedVerdict)) {
        ended.push(o.ref, o.end!, o.rx, o.tx);
        o.set(FLAG.endPosted);
      } else if (endNew || o.has(FLAG.changedHost | FLAG.changedVerdict)) {
        changes.push({
          ref: o.ref,
          ...(endNew ? { end: o.end!, rx: o.rx, tx: o.tx } : {}),
          ...(o.has(FLAG.changedHost) && o.host !== undefined ? { host: o.host } : {}),
          ...(o.has(FLAG.changedVerdict) ? { verdict: o.verdict, ...(o.rule !== undefined ? { rule: o.rule } : {}) } : {}),
        });
        if (o.end !== undefined) o.set(FLAG.endPosted);
      }
      o.clear(FLAG.changedHost | FLAG.changedVerdict);
      if (o.has(FLAG.settled)) this.count(o, minute);
      if (o.end !== undefined && this.flows.get(o.id) === o) this.flows.delete(o.id);
    }
    const sumsDue = !this.sums.empty && (all || now - this.sumsSent >= SUMS_EVERY_MS || now < this.sumsSent);
    if (rows.count === 0 && changes.length === 0 && ended.length === 0 && !sumsDue) return;
    this.counts.batches++;
    const batch: HistoryBatch = { rows: [], changes, processes: [], hosts: [] };
    if (sumsDue) {
      const taken = this.sums.take();
      batch.processes = taken.processes;
      batch.hosts = taken.hosts;
      this.sumsSent = now;
    }
    if (rows.count > 0) batch.columns = rows.columns();
    if (ended.length > 0) batch.ended = Float64Array.from(ended);
    this.options.write(batch);
  }

  /** A settled flow's start (once) and its traffic since the last batch, into the sums. */
  private count(o: OpenFlow, minute: number): void {
    const remote = o.host ?? o.raddr;
    if (!o.has(FLAG.counted)) {
      this.sums.add(Math.floor(o.start / 60_000), o.bucketKey, o.facts!, o.uid, remote, 0, 0, 1);
      o.set(FLAG.counted);
    }
    const drx = o.rx - o.flushedRx;
    const dtx = o.tx - o.flushedTx;
    if (drx > 0 || dtx > 0) {
      this.sums.add(minute, o.bucketKey, o.facts!, o.uid, remote, drx, dtx, 0);
      o.flushedRx = o.rx;
      o.flushedTx = o.tx;
    }
  }

  /** The number a program goes by in batches; the first time, it is added to `fresh`. */
  factsNumber(facts: ProcessFacts, fresh: RowColumns['facts']): number {
    let id = this.factsIds.get(facts);
    if (id !== undefined) return id;
    if (this.factsIds.size >= MAX_FACTS_IDS) this.factsIds.clear();
    id = this.nextFactsId++;
    this.factsIds.set(facts, id);
    fresh.push({ id, facts });
    return id;
  }

  /** The number a text goes by in batches; the first time, it is added to `fresh` (whose first
   *  entry is numbered firstNewText as it was when the batch began). */
  textNumber(text: string, fresh: string[]): number {
    let id = this.textIds.get(text);
    if (id !== undefined) return id;
    if (this.textIds.size >= MAX_TEXT_IDS) this.textIds.clear();
    id = this.nextTextId++;
    this.textIds.set(text, id);
    fresh.push(text);
    return id;
  }

  get firstNewText(): number {
    return this.nextTextId;
  }

  /** Past MAX_OPEN, the oldest tenth goes in one pass (one at a time, each would skip every entry
   *  deleted before it). A forgotten flow's later end or bytes are not recorded. */
  private forgetOldest(): void {
    let n = MAX_OPEN / 10;
    for (const [id, o] of this.flows) {
      if (n-- <= 0) break;
      this.flows.delete(id);
      this.counts.forgotten++;
      o.set(FLAG.dropped);
    }
  }

  /** Sends the last batch (flows still waiting for their program go without it). */
  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    for (const o of this.dirty) if (!o.facts) o.setFacts(this.lookups.factsOf(o, Number.POSITIVE_INFINITY)!);
    this.lookups.giveUpAll();
    for (const o of this.dirty) o.set(FLAG.settled);
    this.flush(true);
    this.closed = true;
  }
}

/** New rows as columns (RowColumns), at most one per flow of a batch. */
class RowBuilder {
  private readonly numbers: Float64Array;
  count = 0;
  private readonly firstText: number;
  private readonly texts: string[] = [];
  private readonly facts: RowColumns['facts'] = [];

  constructor(capacity: number, private readonly numbering: HistoryRecorder) {
    this.numbers = new Float64Array(capacity * ROW_FIELDS);
    this.firstText = numbering.firstNewText;
  }

  add(o: OpenFlow): void {
    const n = this.numbers;
    const at = this.count++ * ROW_FIELDS;
    n[at + ROW.ref] = o.ref;
    n[at + ROW.start] = o.start;
    n[at + ROW.end] = o.end ?? Number.NaN;
    n[at + ROW.facts] = this.numbering.factsNumber(o.facts!, this.facts);
    n[at + ROW.uid] = o.uid ?? Number.NaN;
    n[at + ROW.kind] = o.kind;
    n[at + ROW.raddr] = this.text(o.raddr);
    n[at + ROW.rport] = o.rport;
    n[at + ROW.host] = this.text(o.host);
    n[at + ROW.verdict] = o.verdict;
    n[at + ROW.rule] = this.text(o.rule);
    const counted = o.rx > 0 || o.tx > 0 || o.end !== undefined;
    n[at + ROW.rx] = counted ? o.rx : Number.NaN;
    n[at + ROW.tx] = counted ? o.tx : Number.NaN;
  }

  private text(text: string | undefined): number {
    return text === undefined ? -1 : this.numbering.textNumber(text, this.texts);
  }

  /** (a copy when shorter: a view would carry its whole buffer to the writer) */
  columns(): RowColumns {
    const used = this.count * ROW_FIELDS;
    return { numbers: used === this.numbers.length ? this.numbers : this.numbers.slice(0, used), firstText: this.firstText, texts: this.texts, facts: this.facts };
  }
}
