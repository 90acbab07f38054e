// What a running agent says about itself: its counters (shared with the queue threads), how it finds
// owners, and the status file `flowtop agent --status` reads (written beside the socket once a second).
import type { Action, BlockMode, Verdict } from '../protocol/messages.js';
import { readStatusFile } from './socket-files.js';
import type { FleetLinkStatus } from '../fleet/link-types.js';
import type { HistoryStatus } from '../history/status.js';
import { COUNTER, COUNTER_SLOTS, type AttributionMethod } from './types.js';
import { RateLimitedLog, describeError } from './rate-limited-log.js';

export interface AgentCounters {
  queued: number;
  decidedByRule: number;
  /** Of those, by an identity rule matched in a queue worker (the code identity already verified). */
  decidedByIdentityInWorker: number;
  decidedByUser: number;
  decidedByDefault: number;
  unparsed: number;
  ownerFound: number;
  ownerMissing: number;
  verdictErrors: number;
  /** Packets the queue threads failed to judge (an exception): given the default, but not counted as
   *  decided by it. Absent from status files of older agents. */
  judgeErrors?: number;
  /** Flows blocked with reject whose socket the kernel would not destroy (EPERM, EOPNOTSUPP). */
  destroyErrors?: number;
  /** The agent's own outbound connections (to NATS) let through as its own verified process instance. */
  ownConnections?: number;
  /** Flows a rule decided that the queue threads handed to the main thread, and in how many batches
   *  (many flows a batch under load: never one message per connection). Absent from older agents. */
  decidedHandedOver?: number;
  decidedBatches?: number;
  pending: number;
}

export interface AgentStatus {
  pid: number;
  started: number;
  socket: string;
  queueNum: number;
  failOpen: boolean;
  defaultAction: Action;
  timeoutMs: number;
  blockMode: BlockMode;
  firewall: string;
  attribution: string;
  attributionDetail: string;
  counters: AgentCounters;
  clients: number;
  /** The history recording (absent from older agents' files). */
  history?: HistoryStatus;
  /** The NATS link, with --nats. */
  fleet?: FleetLinkStatus & { host: string; servers: string[] };
}

/** The counters the queue threads and the main thread add to (a SharedArrayBuffer, see types.ts). */
export class SharedCounters {
  readonly buffer = new SharedArrayBuffer(8 * COUNTER_SLOTS);
  readonly view = new BigInt64Array(this.buffer);

  /** Packets answered with `verdict`, counted by what decided it. */
  decided(verdict: Verdict, packets = 1): void {
    const slot = verdict.by === 'rule' ? COUNTER.rule : verdict.by === 'user' ? COUNTER.user : COUNTER.default;
    Atomics.add(this.view, slot, BigInt(packets));
  }

  add(slot: number, n: number): void {
    Atomics.add(this.view, slot, BigInt(n));
  }

  set(slot: number, value: number): void {
    Atomics.store(this.view, slot, BigInt(value));
  }

  values(pending: number): AgentCounters {
    const v = (i: number): number => Number(Atomics.load(this.view, i));
    return {
      queued: v(COUNTER.queued),
      decidedByRule: v(COUNTER.rule),
      decidedByIdentityInWorker: v(COUNTER.identityInWorker),
      decidedByUser: v(COUNTER.user),
      decidedByDefault: v(COUNTER.default),
      unparsed: v(COUNTER.unparsed),
      ownerFound: v(COUNTER.ownerFound),
      ownerMissing: v(COUNTER.ownerMissing),
      verdictErrors: v(COUNTER.verdictErrors),
      judgeErrors: v(COUNTER.judgeErrors),
      destroyErrors: v(COUNTER.destroyErrors),
      ownConnections: v(COUNTER.ownConnections),
      decidedHandedOver: v(COUNTER.decidedHandedOver),
      decidedBatches: v(COUNTER.decidedBatches),
      pending,
    };
  }
}

/** Writes the status file (once a second). Best effort, but not silent: a failure is logged, at most
 *  once a minute, and `--status` meanwhile shows the last file written. */
export class StatusFileWriter {
  private readonly failures: RateLimitedLog;

  constructor(log: (line: string) => void) {
    this.failures = new RateLimitedLog(log, 60_000);
  }

  write(write: (text: string) => void, status: AgentStatus): void {
    try {
      write(`${JSON.stringify(status)}\n`);
    } catch (error) {
      this.failures.say(`the status file could not be written (--status shows the last one): ${describeError(error)}`);
    }
  }
}

/** How owners are found, and what happened since: the recorder's state and the queue threads' notes. */
export class AttributionReport {
  note?: string;

  constructor(public method: AttributionMethod, public detail: string) {}

  /** A queue thread's note (each thread may say it): the status keeps the first of each kind. */
  addNote(message: string): void {
    const gist = message.split(' (')[0]!;
    if (!this.detail.includes(gist)) this.detail += `; ${message}`;
  }

  get fullDetail(): string {
    return this.note ? `${this.detail}; ${this.note}` : this.detail;
  }
}

/** The status a running agent wrote, for `flowtop agent --status`; a string says why a file there was
 *  not believed. */
export function readStatus(file: string): AgentStatus | string | undefined {
  const read = readStatusFile(file);
  if (!read) return undefined;
  if ('problem' in read) return read.problem;
  try {
    return JSON.parse(read.text) as AgentStatus;
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return `${file} is not valid JSON: ignored`;
  }
}
