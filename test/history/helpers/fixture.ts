// A history file written through the real writer: each connection becomes a flow row plus its
// per-minute process and host buckets, as the recorder would send them.
import type { FlowRow, HistoryBatch, HostBucket, ProcessBucket, ProcessFacts } from '../../../src/history/batch.js';
import { ACTION, BY } from '../../../src/history/batch.js';
import { openHistoryDatabase } from '../../../src/history/schema.js';
import { HistoryWriter } from '../../../src/history/writer.js';

export interface Program {
  key: string;
  name: string;
  path: string;
  sha256?: string;
}

export interface Connection {
  /** ms since the epoch. */
  at: number;
  program?: Program;
  /** Host name (absent: only the address is known). */
  host?: string;
  addr?: string;
  rx: number;
  tx: number;
  uid?: number;
  block?: { rule: string };
}

export function program(name: string, sha = name.padEnd(64, '0').slice(0, 64)): Program {
  return { key: `sha256:${sha}`, name, path: `/usr/bin/${name}`, sha256: sha };
}

let ref = 0;

/** Writes the connections in one batch per call, as of `now` (the time events are stamped with). */
export function writeConnections(path: string, connections: readonly Connection[], now: number): void {
  const db = openHistoryDatabase(path);
  try {
    const writer = new HistoryWriter(db);
    const batch: HistoryBatch = { rows: [], changes: [], processes: [], hosts: [] };
    for (const c of connections) {
      const facts: ProcessFacts = c.program ? { key: c.program.key, name: c.program.name, path: c.program.path, ...(c.program.sha256 ? { sha256: c.program.sha256 } : {}), trust: 0 } : { trust: 3 };
      const addr = c.addr ?? '192.0.2.1';
      const row: FlowRow = {
        ref: ++ref, start: c.at, end: c.at + 1000, facts, uid: c.uid ?? 1000, kind: 0, raddr: addr, rport: 443,
        ...(c.host ? { host: c.host } : {}),
        verdict: c.block ? ACTION.block + BY.rule * 4 : ACTION.allow + BY.default * 4,
        ...(c.block ? { rule: c.block.rule } : {}),
        rx: c.rx, tx: c.tx,
      };
      batch.rows.push(row);
      const minute = Math.floor(c.at / 60_000);
      const p: ProcessBucket = { minute, uid: c.uid ?? 1000, rx: c.rx, tx: c.tx, flows: 1, ...(c.program ? { key: c.program.key, facts } : {}) };
      batch.processes.push(p);
      const h: HostBucket = { minute, host: c.host ?? addr, rx: c.rx, tx: c.tx, flows: 1 };
      batch.hosts.push(h);
    }
    writer.write(batch, now);
  } finally {
    db.close();
  }
}
