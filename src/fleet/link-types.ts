// Messages between the agent's main thread and its NATS link thread (link-worker.ts), and what the link
// reports about itself (`flowtop agent --status`).
import type { NatsLinkConfig } from './connect-options.js';

export interface LinkWorkerData {
  config: NatsLinkConfig;
  host: string;
  /** When this agent started (ms): with the batch number it makes each events body's Nats-Msg-Id. */
  started: number;
  /** The events stream's maximum age (ms). */
  maxAgeMs: number;
  /** Bytes of events kept while NATS cannot take them; past it the oldest are dropped and counted. */
  backlogBytes: number;
  /** Link threads this agent started before this one (0 for the first; one more after each restart). */
  thread: number;
}

/** `restarting`: the link thread died and the next one starts at `restartAt`. */
export type LinkState = 'connecting' | 'connected' | 'reconnecting' | 'closed' | 'restarting';

export interface FleetLinkStatus {
  state: LinkState;
  /** The server connected to (its name), when connected. */
  server?: string;
  /** Why the link is not working, in words (no JetStream, a permission refused, …). */
  problem?: string;
  /** Events waiting to be published, and their bytes. */
  backlogEvents: number;
  backlogBytes: number;
  /** Events published (acknowledged by the stream). */
  published: number;
  /** Events dropped because the backlog was full. */
  dropped: number;
  /** Requests answered; fleet rules in force. */
  requests: number;
  fleetRules?: number;
  /** When the host was last announced in the hosts bucket (ms). */
  announced?: number;
  /** Times a link thread that died (threw, exited) was started again; the last death, in words, and
   *  when (ms); while down, when the next starts (ms). Kept by the main thread. */
  restarts?: number;
  lastFailure?: string;
  lastFailureAt?: number;
  restartAt?: number;
  /** Events that came while no link thread ran and found the backlog's bound full (dropped unsent). */
  lost?: number;
}

export type MainToLink =
  /** NDJSON lines of protocol v1 events (each ends in "\n"), `count` events. */
  | { type: 'events'; lines: string; count: number; seq: number }
  | { type: 'hello'; hello: string }
  | { type: 'reply'; id: number; body: string; headers?: Record<string, string> }
  | { type: 'stop' };

export type LinkToMain =
  /** publishedSeq: the last batch the stream acknowledged (0: none yet). */
  | { type: 'status'; status: FleetLinkStatus; publishedSeq: number }
  /** A request on requests(host): the user is the subject's last token. */
  | { type: 'request'; id: number; user: string; server: string; body: string }
  /** The fleet rules for this host as the bucket holds them now (the whole set, after each (re)connect). */
  | { type: 'fleet-rules'; entries: Array<{ key: string; value: string }> }
  /** One change to them. */
  | { type: 'fleet-rule'; key: string; value?: string }
  | { type: 'log'; message: string }
  | { type: 'stopped' };
