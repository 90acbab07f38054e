// The flow table's data shapes. Plain values only: no I/O, no streams.
import type { Attribution } from '../attribution/types.js';
import type { ErrorCode, FlowRecord, HelloMessage, Rule } from '../protocol/messages.js';
import type { ConnectionStatus } from '../source/types.js';
import type { Journal } from './journal.js';
import type { RuleList } from './rule-list.js';

/** What a flow is doing now, as the flows view shows it. */
export type FlowPhase = 'pending' | 'allowed' | 'blocked' | 'open' | 'closed';

export interface FlowRow {
  /** Unique across sources: `${source}#${flow.id}`. */
  readonly key: string;
  readonly source: string;
  readonly flow: FlowRecord;
  /** Attribution of `flow.token` (pending until resolved; insecure with a reason when there is no token). */
  readonly attribution: Attribution;
  /** Attribution of `flow.appToken` when it differs from `flow.token` ("App via helper"). */
  readonly appAttribution?: Attribution;
  // The counters below are updated in place by the reducer (a new row per counter sample was most
  // of the garbage at 10,000 events/s); each such update bumps `rev` and is journalled with the
  // previous values, so the sorter and --jsonl still see what changed.
  rx: number;
  tx: number;
  /** Bytes per second, from the last two counter samples. */
  rxRate: number;
  txRate: number;
  bytesTime?: number;
  readonly closedAt?: number;
  readonly endReason?: string;
  /** Table revision at which this row last changed (replaced, or its counters updated in place). */
  rev: number;
  /** Table revision at which this row object was made: the sorter's last order holds it only if
   *  the order was made at or after this revision. */
  readonly born: number;
  /** Set (the one mutable field) when the table replaced or dropped this row: lets the sorter drop
   *  stale rows from its last order without a Map lookup per row (16 ms per frame at 100,000). */
  retired?: boolean;
}

/** Counts kept up to date by the reducer, so the header costs nothing per frame. */
export interface Tally {
  readonly live: number;
  readonly pending: number;
  readonly blocked: number;
  readonly closed: number;
  /** Live flows whose attribution is secure. */
  readonly secure: number;
  /** Sums of the rows' own rates (bytes per second), kept with the rows; rows whose counters went
   *  quiet are zeroed once a second (see the reducer's tick). */
  readonly rxRate: number;
  readonly txRate: number;
}

export interface ClosedEntry {
  readonly key: string;
  readonly at: number;
}

export interface SourceInfo {
  readonly id: string;
  readonly status: ConnectionStatus;
  readonly hello?: HelloMessage;
  /** Part of a fleet: its NATS server (the link, the fleet rules) or one of its hosts. */
  readonly fleet?: { readonly role: 'server' | 'host'; readonly label: string };
  /** Updated in place by the reducer, like the flow Map (see rule-list.ts). */
  readonly rules: RuleList;
}

export interface SourceError {
  readonly source: string;
  readonly code: ErrorCode;
  readonly message: string;
  readonly time: number;
}

export interface TableOptions {
  /** Most flows remembered; the oldest closed (then oldest) flows leave first. */
  readonly maxFlows: number;
  /** How long a closed flow stays visible (dimmed) before it leaves. */
  readonly lingerMs: number;
  /** Window over which the total rx/tx rate is averaged. */
  readonly rateWindowMs: number;
  /** The system's name for a uid, when it has one (read at the edge: see app/users.ts). */
  readonly userName?: (uid: number) => string | undefined;
}

export interface TrafficSample {
  readonly time: number;
  readonly rx: number;
  readonly tx: number;
}

export interface TableState {
  readonly rev: number;
  readonly now: number;
  readonly options: TableOptions;
  /** Insertion order = order first seen (used for eviction). Updated in place, see reducer.ts. */
  readonly flows: Map<string, FlowRow>;
  /** Attribution by base64 token. Updated in place. */
  readonly attributions: Map<string, Attribution>;
  readonly sources: ReadonlyMap<string, SourceInfo>;
  /** Flows that ended (or were blocked), in the order they did, for lingering and eviction. An entry
   *  whose `at` no longer equals its row's `closedAt` is stale (the row ended again later). Updated
   *  in place. */
  readonly closed: ClosedEntry[];
  readonly totals: { readonly rx: number; readonly tx: number };
  /** Byte deltas within the rate window, oldest first. */
  readonly traffic: readonly TrafficSample[];
  readonly lastError?: SourceError;
  /** Flows dropped because the table was full (bounded memory). */
  readonly evicted: number;
  readonly tally: Tally;
  /** Every row written or retired after revision `journalSince`, oldest first (appended in place,
   *  bounded), so a sorter finds what changed since its last frame without walking the table. */
  readonly journal: Journal;
  readonly journalSince: number;
}

export interface AttributionUpdate {
  /** base64 token */
  readonly key: string;
  readonly attribution: Attribution;
}
