// Writes batches into the history file, one transaction per batch, and prunes it in small steps
// between batches (by age, then by size), so no step holds the file for long. Runs on its own thread
// in the agent and the TUI (writer-thread.ts); nothing here knows about threads. The ids of what a row
// refers to (programs, paths, addresses, hosts, rules) come from interning.ts.
import type Database from 'better-sqlite3';
import type { FlowChange, FlowRow, HistoryBatch, HistoryEvent, ProcessFacts, RowColumns } from './batch.js';
import { ROW, ROW_FIELDS } from './batch.js';
import { Interner } from './interning.js';
import { FLOW_ID_PER_MS, ROLLUPS } from './schema.js';

export interface RetentionOptions {
  /** Flows, buckets and events older than this go (default 30 days). */
  maxAgeMs?: number;
  /** Once the file's used pages pass this, the oldest flows go (default 1 GiB). */
  maxBytes?: number;
}

export const DEFAULT_MAX_AGE_MS = 30 * 24 * 3600_000;
export const DEFAULT_MAX_BYTES = 1024 ** 3;
/** Rows deleted per pruning step: a few milliseconds of work. */
const PRUNE_ROWS = 2000;
/** Pages given back to the file system per step once this many are free. */
const VACUUM_PAGES = 256;
const VACUUM_WHEN_FREE = 1024;
/** Recent flows' row ids by the recorder's number, for the changes that end or complete them (oldest forgotten first). */
const MAX_OPEN_REFS = 200_000;
/** Programs by the recorder's number (RowColumns.facts), the newest kept. */
const MAX_FACTS = 100_000;
/** New flows and ends are written this many to a statement (one statement's overhead shared). */
const CHUNK = 64;
const FLOW_COLUMNS = 'id, dur, ident, trust, uid, parent, kind, raddr, rport, host, verdict, rule, rx, tx';
/** Flow ids given in the last RING_MS milliseconds, by millisecond (flowId). */
const RING_MS = 65_536;
const UNKNOWN_FACTS: ProcessFacts = { trust: 3 };

/** What a program's facts come to in a row, worked out once per program. */
interface RowFacts {
  facts: ProcessFacts;
  ident: number | null;
  parent: number | null;
}

export class HistoryWriter {
  private readonly maxAgeMs: number;
  private readonly maxBytes: number;
  /** Row ids of the programs, paths, addresses, hosts and rules the rows refer to. */
  private readonly ids: Interner;
  /** Recent flows' row ids by the recorder's number (ref % MAX_OPEN_REFS), with the ref that holds
   *  each slot: refs grow by one per flow, so the oldest are overwritten first. */
  private readonly rowIds = new Float64Array(MAX_OPEN_REFS);
  private readonly rowRefs = new Float64Array(MAX_OPEN_REFS).fill(-1);
  private readonly factsById = new Map<number, ProcessFacts>();
  private factsEvictFrom = 1;
  private readonly rowFacts = new Map<number, RowFacts>();
  /** Per millisecond slot (ms % RING_MS): which millisecond holds it and the last number given in it. */
  private readonly ringMs = new Float64Array(RING_MS);
  private readonly ringSeq = new Uint16Array(RING_MS);
  /** The newest millisecond with a flow when the file was opened: older ones ask the file. */
  private readonly openedNewestMs: number;

  private readonly statements;
  /** Arguments of new flows not yet inserted (14 each), and of ends not yet written (4 each). */
  private pendingRows: Array<number | null> = [];
  private pendingEnds: number[] = [];
  /** The hourly and daily copies of the buckets (schema.ts ROLLUPS). */
  private readonly rollups;
  private readonly pageSize: number;

  constructor(private readonly db: Database.Database, options: RetentionOptions = {}) {
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.pageSize = db.pragma('page_size', { simple: true }) as number;
    this.ids = new Interner(db);
    this.openedNewestMs = startOf((db.prepare('SELECT max(id) AS id FROM flows').get() as { id: number | null }).id ?? 0);
    this.rollups = ROLLUPS.map(({ unit, minutes }) => ({
      minutes,
      addTraffic: db.prepare(`INSERT INTO traffic_${unit} (${unit}, ident, uid, rx, tx, flows) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx, flows = flows + excluded.flows`),
      addHostTraffic: db.prepare(`INSERT INTO host_traffic_${unit} (${unit}, host, rx, tx, flows) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx, flows = flows + excluded.flows`),
      oldTraffic: db.prepare(`DELETE FROM traffic_${unit} WHERE (${unit}, ident, uid) IN (SELECT ${unit}, ident, uid FROM traffic_${unit} WHERE ${unit} < ? LIMIT ${PRUNE_ROWS})`),
      oldHostTraffic: db.prepare(`DELETE FROM host_traffic_${unit} WHERE (${unit}, host) IN (SELECT ${unit}, host FROM host_traffic_${unit} WHERE ${unit} < ? LIMIT ${PRUNE_ROWS})`),
    }));
    this.statements = {
      insertFlow: db.prepare('INSERT INTO flows (id, dur, ident, trust, uid, parent, kind, raddr, rport, host, verdict, rule, rx, tx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      insertFlows: db.prepare(`INSERT INTO flows (${FLOW_COLUMNS}) VALUES ${Array.from({ length: CHUNK }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`),
      endFlows: db.prepare(`WITH e(id, dur, rx, tx) AS (VALUES ${Array.from({ length: CHUNK }, () => '(?, ?, ?, ?)').join(', ')})
        UPDATE flows SET dur = e.dur, rx = e.rx, tx = e.tx FROM e WHERE flows.id = e.id`),
      lastIdIn: db.prepare('SELECT max(id) AS id FROM flows WHERE id >= ? AND id < ?'),
      lastId: db.prepare('SELECT max(id) AS id FROM flows'),
      endFlow: db.prepare('UPDATE flows SET dur = ?, rx = ?, tx = ? WHERE id = ?'),
      setProcess: db.prepare('UPDATE flows SET ident = ?, trust = ?, parent = ? WHERE id = ?'),
      updateFlow: db.prepare('UPDATE flows SET dur = coalesce(?, dur), host = coalesce(?, host), verdict = coalesce(?, verdict), rule = coalesce(?, rule), rx = coalesce(?, rx), tx = coalesce(?, tx) WHERE id = ?'),
      addTraffic: db.prepare('INSERT INTO traffic (minute, ident, uid, rx, tx, flows) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx, flows = flows + excluded.flows'),
      addHostTraffic: db.prepare('INSERT INTO host_traffic (minute, host, rx, tx, flows) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rx = rx + excluded.rx, tx = tx + excluded.tx, flows = flows + excluded.flows'),
      insertEvent: db.prepare('INSERT INTO events (time, kind, ident, rule, detail) VALUES (?, ?, ?, ?, ?)'),
      // ids are in start order: the oldest flows are the first ids (PRUNE_ROWS of them at most)
      oldFlows: db.prepare(`DELETE FROM flows WHERE id < ? AND id <= coalesce((SELECT id FROM flows ORDER BY id LIMIT 1 OFFSET ${PRUNE_ROWS - 1}), (SELECT max(id) FROM flows))`),
      oldestFlows: db.prepare(`DELETE FROM flows WHERE id <= coalesce((SELECT id FROM flows ORDER BY id LIMIT 1 OFFSET ${PRUNE_ROWS - 1}), (SELECT max(id) FROM flows))`),
      oldTraffic: db.prepare(`DELETE FROM traffic WHERE (minute, ident, uid) IN (SELECT minute, ident, uid FROM traffic WHERE minute < ? LIMIT ${PRUNE_ROWS})`),
      oldHostTraffic: db.prepare(`DELETE FROM host_traffic WHERE (minute, host) IN (SELECT minute, host FROM host_traffic WHERE minute < ? LIMIT ${PRUNE_ROWS})`),
      oldEvents: db.prepare(`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? ORDER BY time LIMIT ${PRUNE_ROWS})`),
    };
  }

  /** One transaction: the batch's rows, changes and buckets. Returns the events it gave rise to. */
  write(batch: HistoryBatch, now = Date.now()): HistoryEvent[] {
    const events: HistoryEvent[] = [];
    this.learn(batch);
    try {
      this.writeBatch(batch, events, now);
    } catch (error) {
      // Rolled back: ids remembered during it may name rows that are not there.
      this.forgetIds();
      throw error;
    }
    return events;
  }

  private forgetIds(): void {
    this.ids.forgetIds();
    this.rowFacts.clear();
    this.pendingRows.length = 0;
    this.pendingEnds.length = 0;
  }

  private writeBatch(batch: HistoryBatch, events: HistoryEvent[], now: number): void {
    this.db.transaction(() => {
      if (batch.columns) this.insertColumns(batch.columns, events, now);
      for (const row of batch.rows) this.insertFlow(row, events, now);
      this.writePendingRows();
      for (const change of batch.changes) this.changeFlow(change, events, now);
      const ended = batch.ended;
      if (ended) {
        this.writePendingRows(); // an end may be of a flow of this batch
        const pending = this.pendingEnds;
        for (let i = 0; i + 3 < ended.length; i += 4) {
          const id = this.rowOf(ended[i]!);
          if (id === undefined) continue;
          pending.push(id, Math.max(0, ended[i + 1]! - startOf(id)), ended[i + 2]!, ended[i + 3]!);
          if (pending.length === CHUNK * 4) {
            this.statements.endFlows.run(pending);
            pending.length = 0;
          }
        }
        for (let i = 0; i + 3 < pending.length; i += 4) this.statements.endFlow.run(pending[i + 1]!, pending[i + 2]!, pending[i + 3]!, pending[i]!);
        pending.length = 0;
      }
      for (const b of batch.processes) {
        const ident = b.facts ? this.ids.identity(b.facts, events, now) ?? 0 : 0;
        this.statements.addTraffic.run(b.minute, ident, b.uid, b.rx, b.tx, b.flows);
        for (const r of this.rollups) r.addTraffic.run(Math.floor(b.minute / r.minutes), ident, b.uid, b.rx, b.tx, b.flows);
      }
      for (const b of batch.hosts) {
        const host = this.ids.host(b.host);
        this.statements.addHostTraffic.run(b.minute, host, b.rx, b.tx, b.flows);
        for (const r of this.rollups) r.addHostTraffic.run(Math.floor(b.minute / r.minutes), host, b.rx, b.tx, b.flows);
      }
      for (const e of events) {
        const ident = e.identity !== undefined ? this.ids.knownIdentity(e.identity) ?? null : null;
        this.statements.insertEvent.run(e.time, e.kind, ident, e.rule ?? null, e.detail);
      }
    })();
  }

  private insertFlow(row: FlowRow, events: HistoryEvent[], now: number): void {
    const f = row.facts;
    const ident = this.ids.identity(f, events, now);
    const rule = row.rule !== undefined ? this.ids.rule(row.rule, row.verdict, f, row.host ?? row.raddr, events, now) : null;
    const id = this.flowId(row.start);
    this.statements.insertFlow.run(
      id, row.end !== undefined ? Math.max(0, row.end - row.start) : null, ident ?? null, f.trust, row.uid ?? null,
      f.parent !== undefined ? this.ids.path(f.parent) : null, row.kind, this.ids.addr(row.raddr), row.rport,
      row.host !== undefined ? this.ids.host(row.host) : null, row.verdict, rule, row.rx ?? null, row.tx ?? null,
    );
    // Kept after the end too: a late lookup may still complete the row.
    this.remember(row.ref, id);
  }

  private changeFlow(change: FlowChange, events: HistoryEvent[], now: number): void {
    const id = this.rowOf(change.ref);
    if (id === undefined) return; // forgotten among too many flows
    if (change.facts) {
      const f = change.facts;
      this.statements.setProcess.run(this.ids.identity(f, events, now) ?? null, f.trust, f.parent !== undefined ? this.ids.path(f.parent) : null, id);
    }
    if (change.end === undefined && change.host === undefined && change.verdict === undefined) return; // only its program
    const dur = change.end !== undefined ? Math.max(0, change.end - startOf(id)) : null;
    const rule = change.rule !== undefined && change.verdict !== undefined ? this.ids.rule(change.rule, change.verdict, undefined, change.host, events, now) : null;
    this.statements.updateFlow.run(dur, change.host !== undefined ? this.ids.host(change.host) : null, change.verdict ?? null, rule, change.rx ?? null, change.tx ?? null, id);
  }

  /** A new flow's id: its start's millisecond × FLOW_ID_PER_MS + the next number free in it. The
   *  last number given per millisecond is kept for the last RING_MS ms (flows come roughly in start
   *  order; one held back comes a second or so late); an older millisecond, or one the file had when
   *  opened, asks the file. A full millisecond (1,024 flows) lends the id after the newest flow: that
   *  flow's start then reads a few ms late. */
  private flowId(start: number): number {
    const ms = Math.floor(start);
    const slot = ms % RING_MS;
    const held = this.ringMs[slot]!;
    if (held === ms) {
      if (this.ringSeq[slot]! < FLOW_ID_PER_MS - 1) return ms * FLOW_ID_PER_MS + ++this.ringSeq[slot]!;
    } else if (ms > held && ms > this.openedNewestMs) {
      // the slot holds an older millisecond (or none): this one has no flow yet
      this.ringMs[slot] = ms;
      this.ringSeq[slot] = 0;
      return ms * FLOW_ID_PER_MS;
    } else {
      this.writePendingRows(); // the file must hold what it is asked about
      const last = (this.statements.lastIdIn.get(ms * FLOW_ID_PER_MS, (ms + 1) * FLOW_ID_PER_MS) as { id: number | null }).id;
      const id = last === null ? ms * FLOW_ID_PER_MS : last % FLOW_ID_PER_MS < FLOW_ID_PER_MS - 1 ? last + 1 : undefined;
      if (id !== undefined) {
        if (ms >= held) {
          this.ringMs[slot] = ms;
          this.ringSeq[slot] = id % FLOW_ID_PER_MS;
        }
        return id;
      }
    }
    this.writePendingRows();
    const id = ((this.statements.lastId.get() as { id: number | null }).id ?? 0) + 1;
    const idMs = startOf(id);
    const idSlot = idMs % RING_MS;
    if (idMs >= this.ringMs[idSlot]!) {
      this.ringMs[idSlot] = idMs;
      this.ringSeq[idSlot] = id % FLOW_ID_PER_MS;
    }
    return id;
  }

  /** The texts and programs a batch numbers for the first time (kept even when its transaction
   *  fails: later batches refer to them). */
  learn(batch: HistoryBatch): void {
    const cols = batch.columns;
    if (!cols) return;
    this.ids.learnTexts(cols);
    for (const d of cols.facts) this.factsById.set(d.id, d.facts);
    while (this.factsById.size > MAX_FACTS) this.factsById.delete(this.factsEvictFrom++);
  }

  private insertColumns(cols: RowColumns, events: HistoryEvent[], now: number): void {
    const n = cols.numbers;
    for (let at = 0; at + ROW_FIELDS <= n.length; at += ROW_FIELDS) {
      const factsId = n[at + ROW.facts]!;
      let rf = this.rowFacts.get(factsId);
      if (!rf) {
        const facts = this.factsById.get(factsId) ?? UNKNOWN_FACTS;
        rf = { facts, ident: this.ids.identity(facts, events, now) ?? null, parent: facts.parent !== undefined ? this.ids.path(facts.parent) : null };
        if (this.rowFacts.size >= MAX_FACTS) this.rowFacts.clear();
        this.rowFacts.set(factsId, rf);
      }
      const raddrText = n[at + ROW.raddr]!;
      const hostText = n[at + ROW.host]!;
      const ruleText = n[at + ROW.rule]!;
      const raddr = this.ids.addrByText(raddrText);
      const host = hostText < 0 ? null : this.ids.hostByText(hostText);
      const verdict = n[at + ROW.verdict]!;
      const rule = ruleText < 0 ? null : this.ids.ruleByText(ruleText, verdict, rf.facts, hostText < 0 ? raddrText : hostText, events, now);
      const start = n[at + ROW.start]!;
      const end = n[at + ROW.end]!;
      const id = this.flowId(start);
      const rows = this.pendingRows;
      rows.push(
        id, end === end ? Math.max(0, end - start) : null, rf.ident, rf.facts.trust, orNull(n[at + ROW.uid]!), rf.parent, n[at + ROW.kind]!,
        raddr, n[at + ROW.rport]!, host, verdict, rule, orNull(n[at + ROW.rx]!), orNull(n[at + ROW.tx]!),
      );
      if (rows.length === CHUNK * 14) {
        this.statements.insertFlows.run(rows);
        rows.length = 0;
      }
      this.remember(n[at + ROW.ref]!, id);
    }
  }

  /** Inserts the new flows not inserted yet (fewer than a chunk), one statement each. */
  private writePendingRows(): void {
    const rows = this.pendingRows;
    for (let i = 0; i < rows.length; i += 14) this.statements.insertFlow.run(rows.slice(i, i + 14));
    rows.length = 0;
  }

  /** A flow's row id by the recorder's number, for its end and later changes (a ring: a Map with
   *  20,000 insertions and deletions a second cost more than the insert itself). */
  private remember(ref: number, id: number): void {
    const slot = ref % MAX_OPEN_REFS;
    this.rowRefs[slot] = ref;
    this.rowIds[slot] = id;
  }

  private rowOf(ref: number): number | undefined {
    const slot = ref % MAX_OPEN_REFS;
    return this.rowRefs[slot] === ref ? this.rowIds[slot] : undefined;
  }

  /** One small step of retention; true while there is more to do. Call it between batches. */
  pruneStep(now = Date.now()): boolean {
    const cutoff = now - this.maxAgeMs;
    const minute = Math.floor(cutoff / 60_000);
    let more = false;
    const s = this.statements;
    more = s.oldFlows.run(cutoff * FLOW_ID_PER_MS).changes === PRUNE_ROWS || more;
    more = s.oldTraffic.run(minute).changes === PRUNE_ROWS || more;
    more = s.oldHostTraffic.run(minute).changes === PRUNE_ROWS || more;
    // An hour or a day goes once all of it is older than the cutoff.
    for (const r of this.rollups) {
      more = r.oldTraffic.run(Math.floor(minute / r.minutes)).changes === PRUNE_ROWS || more;
      more = r.oldHostTraffic.run(Math.floor(minute / r.minutes)).changes === PRUNE_ROWS || more;
    }
    more = s.oldEvents.run(cutoff).changes === PRUNE_ROWS || more;
    if (this.usedBytes() > this.maxBytes) more = s.oldestFlows.run().changes > 0 || more;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free >= VACUUM_WHEN_FREE) {
      this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
      more = true;
    }
    return more;
  }

  /** Bytes of the file's pages in use (free pages excluded). */
  usedBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * this.pageSize;
  }
}

function orNull(n: number): number | null {
  return n === n ? n : null; // NaN: absent
}

/** A flow's start (ms) from its id. */
function startOf(id: number): number {
  return Math.floor(id / FLOW_ID_PER_MS);
}
