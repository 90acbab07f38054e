// The history file's layout, and opening it: one SQLite file a person can read with `sqlite3`. Rows are
// compact (identities, paths, hosts, addresses and rule ids interned into small tables and referred to
// by number); traffic is also kept as per-minute buckets per process identity and per host, so a
// ranking or a graph over days reads thousands of bucket rows, not millions of flows.
//
// A file that is not ours is refused, never overwritten: its header must be SQLite's, its
// application_id ours (or it must be a new, empty database), its schema version one we know.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';

/** PRAGMA application_id of a flowtop history file: "flwh" in ASCII. */
export const APPLICATION_ID = 0x666c7768;
/** PRAGMA user_version: the schema below. A newer file is refused (written by a newer flowtop); an
 *  older one is converted when a writer opens it (readers read both). Version 2: a flow's id is its
 *  start (FLOW_ID_PER_MS ids per millisecond) and `start` a virtual column, with no index of its own. */
export const SCHEMA_VERSION = 2;
/** A flow's id is start (ms since the epoch) × this + a sequence number within the millisecond: the
 *  table's own order is time order, so windows of time are ranges of ids (no index on start) and
 *  the start is stored once, inside the id. Ids stay exact in a JavaScript number until the year 2248. */
export const FLOW_ID_PER_MS = 1024;

const SQLITE_HEADER = 'SQLite format 3\0';

// Codes stored in small integer columns (documented in docs/history.md).
export const TRUST_CODES = ['secure', 'insecure', 'gone', 'unknown'] as const;
export type TrustCode = (typeof TRUST_CODES)[number];
export const ACTION_CODES = ['observed', 'allow', 'block'] as const;
export const BY_CODES = ['none', 'rule', 'user', 'default'] as const;
/** A flow decided by a person refers, in its rule column, to a rules row named this + who decided
 *  (verdict.decider, e.g. "nats:alice@hub"): interned like rule ids, no column of its own. */
export const DECIDER_PREFIX = 'decider:';
export const PROTOCOL_CODES = ['tcp', 'udp', 'icmp', 'other'] as const;

/** Coarser copies of the per-minute buckets: the same sums per hour and per day (hour = minute / 60,
 *  day = minute / 1440, UTC), kept by the writer beside the minutes, so a ranking or a graph over
 *  weeks reads the days and hours inside the window and minutes only at its edges. */
export const ROLLUPS = [
  { unit: 'day', minutes: 1440 },
  { unit: 'hour', minutes: 60 },
] as const;

function rollupTables(): string {
  return ROLLUPS.map(({ unit }) => `CREATE TABLE traffic_${unit} (
  ${unit} INTEGER NOT NULL, ident INTEGER NOT NULL, uid INTEGER NOT NULL,
  rx INTEGER NOT NULL, tx INTEGER NOT NULL, flows INTEGER NOT NULL,
  PRIMARY KEY (${unit}, ident, uid)
) WITHOUT ROWID;
CREATE TABLE host_traffic_${unit} (
  ${unit} INTEGER NOT NULL, host INTEGER NOT NULL,
  rx INTEGER NOT NULL, tx INTEGER NOT NULL, flows INTEGER NOT NULL,
  PRIMARY KEY (${unit}, host)
) WITHOUT ROWID;
`).join('');
}

const ROLLUP_SCHEMA = rollupTables();

const FLOWS_TABLE = `CREATE TABLE flows (
  id INTEGER PRIMARY KEY,      -- start × 1024 + a sequence number within that millisecond
  start INTEGER GENERATED ALWAYS AS (id >> 10) VIRTUAL, -- ms since the epoch (computed, not stored)
  dur INTEGER,                 -- ms until it ended; NULL while open (or never seen to end)
  ident INTEGER,               -- identities.id; NULL: no owner found
  trust INTEGER NOT NULL,      -- 0 secure, 1 insecure, 2 gone, 3 unknown
  uid INTEGER,
  parent INTEGER,              -- paths.id of the parent's executable (or its name)
  kind INTEGER NOT NULL,       -- protocol (0 tcp, 1 udp, 2 icmp, 3 other) | 4 inbound | 8 ipv6
  raddr INTEGER NOT NULL,      -- addrs.id
  rport INTEGER NOT NULL,
  host INTEGER,                -- hosts.id of the remote's name
  verdict INTEGER NOT NULL,    -- action (0 observed, 1 allow, 2 block) | by << 2 (0 none, 1 rule, 2 user, 3 default)
  rule INTEGER,                -- rules.id: by rule, the rule; by user, who decided (rule_id "decider:<who>")
  rx INTEGER,
  tx INTEGER
);`;
const FLOWS_INDEX = 'CREATE INDEX flows_by_ident ON flows(ident);';

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- A program as flowtop identified it: its code identity ("sha256:…", "package:NAME:PATH"), else
-- "path:…"/"name:…" when the owner was seen but could not be identified securely.
CREATE TABLE identities (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  name TEXT,
  path INTEGER REFERENCES paths(id),
  sha256 TEXT,
  package TEXT,
  first_seen INTEGER NOT NULL
);
CREATE INDEX identities_by_path ON identities(path);
CREATE TABLE paths (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
-- Host names and, for traffic buckets of flows without one, bare addresses; domain is the name's
-- registrable domain.
CREATE TABLE hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, domain TEXT);
CREATE TABLE addrs (id INTEGER PRIMARY KEY, addr TEXT NOT NULL UNIQUE);
CREATE TABLE rules (id INTEGER PRIMARY KEY, rule_id TEXT NOT NULL UNIQUE, first_block INTEGER);
${FLOWS_TABLE}

-- One program's flows (the history view's drill-down to its hosts) without reading everyone's; the
-- index holds the id after the identity, so a program's flows are in time order there too.
${FLOWS_INDEX}
-- Bytes per minute per process identity (0: no owner) and user (-1: unknown); flows counts the flows
-- that started in that minute.
CREATE TABLE traffic (
  minute INTEGER NOT NULL, ident INTEGER NOT NULL, uid INTEGER NOT NULL,
  rx INTEGER NOT NULL, tx INTEGER NOT NULL, flows INTEGER NOT NULL,
  PRIMARY KEY (minute, ident, uid)
) WITHOUT ROWID;
CREATE TABLE host_traffic (
  minute INTEGER NOT NULL, host INTEGER NOT NULL,
  rx INTEGER NOT NULL, tx INTEGER NOT NULL, flows INTEGER NOT NULL,
  PRIMARY KEY (minute, host)
) WITHOUT ROWID;
${ROLLUP_SCHEMA}
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,          -- first-seen | changed | rule-blocking
  ident INTEGER,
  rule TEXT,
  detail TEXT NOT NULL
);
CREATE INDEX events_by_time ON events(time);
`;

/** The file cannot be used as a history: the message says why and that it was left alone. */
export class HistoryRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryRefused';
  }
}

export interface OpenOptions {
  readonly?: boolean;
}

/** Opens (creating when absent, unless readonly) a history file, refusing anything that is not one. */
export function openHistoryDatabase(path: string, options: OpenOptions = {}): Database.Database {
  const readonly = options.readonly ?? false;
  const present = existsSync(path);
  if (readonly && !present) {
    let code = '';
    try {
      statSync(path);
    } catch (error) {
      code = (error as NodeJS.ErrnoException).code ?? '';
    }
    throw new HistoryRefused(code === 'EACCES' ? `${path}: permission denied` : `${path}: no history file there`);
  }
  if (present) {
    try {
      checkHeader(path);
    } catch (error) {
      if (error instanceof HistoryRefused) throw error;
      // A file others may not read (the agent's is 0640 root:flowtop): said, not thrown raw.
      const code = (error as NodeJS.ErrnoException).code;
      throw new HistoryRefused(code === 'EACCES' || code === 'EPERM' ? `${path}: permission denied` : `${path}: ${(error as Error).message}`);
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: readonly });
  } catch (error) {
    throw new HistoryRefused(`${path}: cannot open: ${(error as Error).message}`);
  }
  try {
    adopt(db, path, readonly);
    return db;
  } catch (error) {
    db.close();
    if (error instanceof HistoryRefused) throw error;
    const message = (error as Error).message;
    throw new HistoryRefused(/malformed|corrupt|not a database/i.test(message)
      ? `${path} is damaged (${message}); flowtop leaves it alone: move it away (sqlite3 ${path} .recover may save its rows)`
      : `${path}: ${message}`);
  }
}

/** A file that does not start with SQLite's header is not ours, whatever its name. */
function checkHeader(path: string): void {
  if (!statSync(path).isFile()) throw new HistoryRefused(`${path} is not a regular file; flowtop leaves it alone`);
  if (statSync(path).size === 0) return; // an empty file is a new database to SQLite
  const head = Buffer.alloc(16);
  const fd = openSync(path, 'r');
  let read: number;
  try {
    read = readSync(fd, head, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (read < 16 || head.toString('latin1') !== SQLITE_HEADER) {
    throw new HistoryRefused(`${path} is not a SQLite database; flowtop leaves it alone: move it away or choose another file`);
  }
}

function adopt(db: Database.Database, path: string, readonly: boolean): void {
  const appId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n;
  if (appId !== APPLICATION_ID) {
    if (appId !== 0 || tables > 0 || readonly) {
      throw new HistoryRefused(`${path} is a SQLite database of another program (application_id ${appId}, ${tables} schema objects), not a flowtop history; flowtop leaves it alone: move it away or choose another file`);
    }
    initialise(db);
    return;
  }
  if (version > SCHEMA_VERSION) {
    throw new HistoryRefused(`${path} was written by a newer flowtop (history schema ${version}, this one knows ${SCHEMA_VERSION}); it is left alone`);
  }
  if (!readonly) {
    configure(db);
    if (version < 2) flowIdsFromStart(db);
    addHourlyBuckets(db);
  }
}

/** Schema 1 → 2: the flows table rebuilt with ids made of the start (one pass over it; a 1 GiB file
 *  takes about a minute, on the writer's thread, while the agent judges on). A millisecond with more
 *  than 1,024 flows (never seen) would keep its first 1,024. */
function flowIdsFromStart(db: Database.Database): void {
  db.transaction(() => {
    db.exec(`ALTER TABLE flows RENAME TO flows_v1;
      DROP INDEX IF EXISTS flows_by_start; DROP INDEX IF EXISTS flows_by_ident;
      ${FLOWS_TABLE}
      INSERT OR IGNORE INTO flows (id, dur, ident, trust, uid, parent, kind, raddr, rport, host, verdict, rule, rx, tx)
        SELECT start * ${FLOW_ID_PER_MS} + row_number() OVER (PARTITION BY start ORDER BY id) - 1, dur, ident, trust, uid, parent, kind, raddr, rport, host, verdict, rule, rx, tx
        FROM flows_v1 ORDER BY 1;
      DROP TABLE flows_v1;
      ${FLOWS_INDEX}`);
    db.pragma('user_version = 2');
  })();
}

/** A file written before the hourly and daily buckets existed gets them, summed from its minutes (once). */
function addHourlyBuckets(db: Database.Database): void {
  if (hasHourlyBuckets(db)) return;
  db.transaction(() => {
    for (const { unit } of ROLLUPS) {
      db.exec(`DROP TABLE IF EXISTS traffic_${unit}; DROP TABLE IF EXISTS host_traffic_${unit};`);
    }
    db.exec(ROLLUP_SCHEMA);
    for (const { unit, minutes } of ROLLUPS) {
      db.exec(`INSERT INTO traffic_${unit} SELECT minute / ${minutes}, ident, uid, sum(rx), sum(tx), sum(flows) FROM traffic GROUP BY 1, 2, 3;
        INSERT INTO host_traffic_${unit} SELECT minute / ${minutes}, host, sum(rx), sum(tx), sum(flows) FROM host_traffic GROUP BY 1, 2;`);
    }
  })();
}

export function hasHourlyBuckets(db: Database.Database): boolean {
  return (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('traffic_hour', 'host_traffic_hour')").get() as { n: number }).n === 2;
}

function initialise(db: Database.Database): void {
  // auto_vacuum must be chosen before the first table: retention then gives freed pages back to the
  // file system in small steps (PRAGMA incremental_vacuum) instead of leaving the file at its peak.
  db.pragma('auto_vacuum = INCREMENTAL');
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    db.exec(SCHEMA);
    db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('created', String(Date.now()));
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
  configure(db);
}

/** Closes a writer's connection leaving one self-contained file: the WAL folded in and the journal
 *  mode set back to DELETE, so a reader who may not create files beside it (group flowtop in the
 *  agent's 0750 folder) can open it while no writer runs. The writer sets WAL again when it opens. */
export function closeHistoryDatabase(db: Database.Database): void {
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('journal_mode = DELETE');
  } catch (error) {
    // a reader holds it (or the disk is full): the next opener recovers from the WAL. Not a bug.
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) throw error;
  }
  db.close();
}

function configure(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  // In WAL mode NORMAL loses no committed transaction when the process dies (only on power loss).
  db.pragma('synchronous = NORMAL');
  // A multi-row statement keeps a statement journal (to undo just itself); on disk, past 64 KiB it
  // costs a write() per page and per page number: most of the writer's system time. In memory it is
  // a few hundred KiB at most (one 64-row statement's pages).
  db.pragma('temp_store = MEMORY');
  db.pragma('busy_timeout = 2000');
}
