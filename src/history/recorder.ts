// Turns the stream of flow events (protocol v1's flow, verdict, bytes and end — the agent's observer
// events, or the passive monitor's) into history batches. Runs on the thread that sees the events and
// only keeps them in memory: every FLUSH_MS a batch goes to the writer (its own thread), so the event
// path never waits on the disk. A flow's program comes from program-lookups.ts; its row waits a
// little for that answer.
import type { FlowRecord } from '../protocol/messages.js';
import type { BytesMessage, EndMessage, FlowMessage, RuleChangedMessage, VerdictMessage } from '../protocol/messages.js';
import type { FlowChange, HistoryBatch, ProcessFacts, RowColumns } from './batch.js';
import { MAX_TEXT_IDS, ROW, ROW_FIELDS } from './batch.js';
import { FLAG, OpenFlows } from './open-flow.js';
import { ProgramLookups, type Resolve } from './program-lookups.js';
import type { EndedFlow } from '../agent/observers.js';
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
  private readonly flows = new OpenFlows();
  /** Flows (slots) changed since their last batch (each once: its `dirty` flag). */
  private dirty: number[] = [];
  private readonly lookups: ProgramLookups;
  private completions: FlowChange[] = [];
  /** The number each program's facts go by in batches (sent whole the first time only). */
  private readonly factsIds = new Map<ProcessFacts, number>();
  private nextFactsId = 1;
  private readonly textIds = new Map<string, number>();
  private nextTextId = 0;
  private readonly sums = new TrafficSums();
  private scratch = new Float64Array(0);
  private sumsSent = 0;
  private nextRef = 1;
  private timer?: NodeJS.Timeout;
  private soon = false;
  private closed = false;
  private readonly now: () => number;
  readonly counts: RecorderCounts = { flows: 0, batches: 0, forgotten: 0 };

  constructor(private readonly options: RecorderOptions) {
    this.now = options.now ?? Date.now;
    this.lookups = new ProgramLookups(this.flows, options.resolve, this.now, (s, facts) => {
      if (facts) this.completions.push({ ref: this.flows.ref[s]!, facts });
      this.touch(s);
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
        const s = this.flows.find(event.id);
        if (s !== undefined && this.flows.setVerdict(s, event.verdict)) this.touch(s);
        return;
      }
      case 'bytes':
        for (const c of event.counters) this.onBytes(c.id, c.rx, c.tx);
        return;
      case 'end': {
        const s = this.flows.find(event.id);
        if (s === undefined) return;
        this.flows.end[s] = event.time;
        this.touch(s);
        return;
      }
      default: return; // rule changes: a rule's first block is seen on the flow it blocked
    }
  }

  private onFlow(flow: FlowRecord, existing: boolean): void {
    const f = this.flows;
    const known = f.find(flow.id);
    if (known !== undefined) {
      if (flow.remoteHost && flow.remoteHost.name !== f.host[known]) {
        f.host[known] = flow.remoteHost.name;
        f.set(known, FLAG.changedHost);
      }
      if (flow.identity && !f.agentIdentity[known]) {
        f.agentIdentity[known] = flow.identity;
        if (!f.has(known, FLAG.posted)) f.facts[known] = undefined;
      }
      if (flow.verdict) f.setVerdict(known, flow.verdict);
      this.touch(known);
      return;
    }
    this.opened(f.add(flow.id, flow, this.nextRef++, this.now(), existing), flow.token);
  }

  /** A flow that had ended when it was told (the agent's flows whose socket closed before they were
   *  published): its row is written once, whole. */
  ended(flow: EndedFlow): void {
    if (this.closed) return;
    const f = this.flows;
    const s = f.add(undefined, flow, this.nextRef++, this.now(), false);
    f.end[s] = flow.end;
    f.rx[s] = flow.rx;
    f.tx[s] = flow.tx;
    this.opened(s, flow.token);
  }

  private opened(s: number, token: string | undefined): void {
    this.counts.flows++;
    this.lookups.want(token);
    if (this.flows.size > MAX_OPEN) this.counts.forgotten += this.flows.dropOldest(MAX_OPEN / 10);
    this.touch(s);
  }

  private onBytes(id: string, rx: number, tx: number): void {
    const f = this.flows;
    const s = f.find(id);
    if (s === undefined || !(rx >= f.rx[s]!) || !(tx >= f.tx[s]!)) return;
    f.rx[s] = rx;
    f.tx[s] = tx;
    if (f.has(s, FLAG.baseline)) {
      f.clear(s, FLAG.baseline);
      f.flushedRx[s] = rx;
      f.flushedTx[s] = tx;
    }
    this.touch(s);
  }

  private touch(s: number): void {
    if (!this.flows.has(s, FLAG.dirty)) {
      this.flows.set(s, FLAG.dirty);
      this.dirty.push(s);
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
    const rows = new RowBuilder(this.rowScratch(list.length), this);
    const changes: FlowChange[] = this.completions;
    this.completions = [];
    const endedRows: number[] = [];
    const f = this.flows;
    for (const s of list) {
      if (f.has(s, FLAG.dropped)) {
        f.clear(s, FLAG.dirty);
        f.release(s);
        continue;
      }
      const end = f.end[s]!;
      const ended = end === end; // not NaN
      if (!all && !f.has(s, FLAG.posted) && !ended && now - f.seen[s]! < HOLD_MS) {
        this.dirty.push(s);
        continue;
      }
      if (!f.facts[s]) {
        const facts = this.lookups.factsOf(s, now);
        if (!facts) { // its program's lookup is still under way
          this.dirty.push(s);
          continue;
        }
        f.setFacts(s, facts);
        const waits = this.lookups.pending(s) && this.lookups.await(s);
        // the agent's own identity for the flow names its program already: only its parent waits
        if (!waits || (f.agentIdentity[s] !== undefined && facts.key !== undefined)) f.set(s, FLAG.settled);
      }
      f.clear(s, FLAG.dirty);
      const endNew = ended && !f.has(s, FLAG.endPosted);
      const changed = f.has(s, FLAG.changedHost | FLAG.changedVerdict);
      if (!f.has(s, FLAG.posted)) {
        rows.add(f, s);
        f.set(s, FLAG.posted | (ended ? FLAG.endPosted : 0));
      } else if (endNew && !changed) {
        endedRows.push(f.ref[s]!, end, f.rx[s]!, f.tx[s]!);
        f.set(s, FLAG.endPosted);
      } else if (endNew || changed) {
        const host = f.host[s];
        const rule = f.rule[s];
        changes.push({
          ref: f.ref[s]!,
          ...(endNew ? { end, rx: f.rx[s]!, tx: f.tx[s]! } : {}),
          ...(f.has(s, FLAG.changedHost) && host !== undefined ? { host } : {}),
          ...(f.has(s, FLAG.changedVerdict) ? { verdict: f.verdict[s]!, ...(rule !== undefined ? { rule } : {}) } : {}),
        });
        if (ended) f.set(s, FLAG.endPosted);
      }
      f.clear(s, FLAG.changedHost | FLAG.changedVerdict);
      if (f.has(s, FLAG.settled)) this.count(s, minute);
      if (ended) f.forget(s);
    }
    const sumsDue = !this.sums.empty && (all || now - this.sumsSent >= SUMS_EVERY_MS || now < this.sumsSent);
    if (rows.count === 0 && changes.length === 0 && endedRows.length === 0 && !sumsDue) return;
    this.counts.batches++;
    const batch: HistoryBatch = { rows: [], changes, processes: [], hosts: [] };
    if (sumsDue) {
      const taken = this.sums.take();
      batch.processes = taken.processes;
      batch.hosts = taken.hosts;
      this.sumsSent = now;
    }
    if (rows.count > 0) batch.columns = rows.columns();
    if (endedRows.length > 0) batch.ended = Float64Array.from(endedRows);
    this.options.write(batch);
  }

  /** Room for `rows` new rows, kept from batch to batch (a batch's rows are copied out of it). */
  private rowScratch(rows: number): Float64Array {
    if (this.scratch.length < rows * ROW_FIELDS) this.scratch = new Float64Array(rows * ROW_FIELDS * 2);
    return this.scratch;
  }

  /** A settled flow's start (once) and its traffic since the last batch, into the sums. */
  private count(s: number, minute: number): void {
    const f = this.flows;
    const remote = f.host[s] ?? f.raddr[s]!;
    const uid = f.uid[s]!;
    if (!f.has(s, FLAG.counted)) {
      this.sums.add(Math.floor(f.start[s]! / 60_000), f.bucketKey[s]!, f.facts[s]!, uid === uid ? uid : undefined, remote, 0, 0, 1);
      f.set(s, FLAG.counted);
    }
    const drx = f.rx[s]! - f.flushedRx[s]!;
    const dtx = f.tx[s]! - f.flushedTx[s]!;
    if (drx > 0 || dtx > 0) {
      this.sums.add(minute, f.bucketKey[s]!, f.facts[s]!, uid === uid ? uid : undefined, remote, drx, dtx, 0);
      f.flushedRx[s] = f.rx[s]!;
      f.flushedTx[s] = f.tx[s]!;
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

  /** Sends the last batch (flows still waiting for their program go without it). */
  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    const f = this.flows;
    for (const s of this.dirty) if (!f.facts[s] && !f.has(s, FLAG.dropped)) f.setFacts(s, this.lookups.factsOf(s, Number.POSITIVE_INFINITY)!);
    this.lookups.giveUpAll();
    for (const s of this.dirty) f.set(s, FLAG.settled);
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

  /** `numbers`: room enough for every row of the batch, reused (columns() copies what was used). */
  constructor(numbers: Float64Array, private readonly numbering: HistoryRecorder) {
    this.numbers = numbers;
    this.firstText = numbering.firstNewText;
  }

  add(f: OpenFlows, s: number): void {
    const n = this.numbers;
    const at = this.count++ * ROW_FIELDS;
    const end = f.end[s]!;
    const rx = f.rx[s]!;
    const tx = f.tx[s]!;
    n[at + ROW.ref] = f.ref[s]!;
    n[at + ROW.start] = f.start[s]!;
    n[at + ROW.end] = end;
    n[at + ROW.facts] = this.numbering.factsNumber(f.facts[s]!, this.facts);
    n[at + ROW.uid] = f.uid[s]!;
    n[at + ROW.kind] = f.kind[s]!;
    n[at + ROW.raddr] = this.text(f.raddr[s]);
    n[at + ROW.rport] = f.rport[s]!;
    n[at + ROW.host] = this.text(f.host[s]);
    n[at + ROW.verdict] = f.verdict[s]!;
    n[at + ROW.rule] = this.text(f.rule[s]);
    const counted = rx > 0 || tx > 0 || end === end;
    n[at + ROW.rx] = counted ? rx : Number.NaN;
    n[at + ROW.tx] = counted ? tx : Number.NaN;
  }

  private text(text: string | undefined): number {
    return text === undefined ? -1 : this.numbering.textNumber(text, this.texts);
  }

  /** (a copy: the room is reused, and a view would carry its whole buffer to the writer) */
  columns(): RowColumns {
    return { numbers: this.numbers.slice(0, this.count * ROW_FIELDS), firstText: this.firstText, texts: this.texts, facts: this.facts };
  }
}
