// The fleet's wire over NATS (docs/fleet.md is the normative text): which subjects and buckets carry
// what, and the bodies of its requests and replies. Every body carries protocol v1 messages unchanged
// (docs/protocol.md), so the agent and the client validate them with the same decoders as on the socket.
import type { ClientMessage, ExtensionMessage } from '../protocol/messages.js';

/** Subjects and bucket names start with this (`--nats-prefix`), so several fleets can share a server. */
export const DEFAULT_PREFIX = 'flowtop';
/** A host name as it appears in subjects and keys: one NATS subject token, no dots or wildcards. */
export const HOST_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** A NATS user name as it appears in the request subject (the last token). */
export const USER_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Largest body either side sends (NATS's default max_payload is 1 MiB). */
export const MAX_BODY_BYTES = 512 * 1024;
/** Header of a snapshot reply: `<agent start ms>.<batch seq>` of the last events batch queued before
 *  the snapshot was taken (the tail of that batch's Nats-Msg-Id), so a client keeps only later batches. */
export const LAST_BATCH_HEADER = 'Flowtop-Last-Batch';
/** How often an agent refreshes its entry in the hosts bucket; a client calls a host gone after 3 misses. */
export const ANNOUNCE_INTERVAL_MS = 5_000;

export interface FleetNames {
  /** The JetStream stream holding every host's events. */
  stream: string;
  /** Where one host publishes its events (NDJSON bodies, see EventBatch). */
  events(host: string): string;
  /** Every host's events (what the stream captures and a client reads). */
  allEvents: string;
  /** Where a client sends a request to one host as NATS user `user` (the server's permissions decide
   *  who may publish here; the agent records `user` as who decided). */
  request(host: string, user: string): string;
  /** What one agent subscribes to for its requests. */
  requests(host: string): string;
  /** KV bucket: key = host name, value = HostAnnouncement JSON, refreshed every ANNOUNCE_INTERVAL_MS. */
  hostsBucket: string;
  /** KV bucket of fleet rules: `all.<ruleId>` for every host, `host.<host>.<ruleId>` for one. */
  rulesBucket: string;
}

export function fleetNames(prefix: string = DEFAULT_PREFIX): FleetNames {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) throw new Error(`bad NATS prefix "${prefix}": use 1–32 letters, digits, "_" or "-"`);
  return {
    stream: `${prefix}_events`.toUpperCase(),
    events: (host) => `${prefix}.events.${checkedHost(host)}`,
    allEvents: `${prefix}.events.*`,
    request: (host, user) => `${prefix}.rpc.${checkedHost(host)}.${checkedUser(user)}`,
    requests: (host) => `${prefix}.rpc.${checkedHost(host)}.*`,
    hostsBucket: `${prefix}-hosts`,
    rulesBucket: `${prefix}-rules`,
  };
}

/** Host name for subjects from the machine's own name: characters NATS subjects cannot carry become "-". */
export function hostNameFrom(machineName: string): string {
  const cleaned = machineName.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'unnamed';
}

function checkedHost(host: string): string {
  if (!HOST_NAME_PATTERN.test(host)) throw new Error(`bad host name "${host}": use 1–64 letters, digits, "_" or "-"`);
  return host;
}

function checkedUser(user: string): string {
  if (!USER_NAME_PATTERN.test(user)) throw new Error(`bad NATS user name "${user}": use 1–64 letters, digits, "_" or "-"`);
  return user;
}

/** Which hosts a key of the rules bucket is for: `all.<ruleId>` → every host (`{}`), `host.<host>.<ruleId>`
 *  → that host; undefined for a key of neither form. */
export function fleetRuleScope(keyOrId: string): { host?: string } | undefined {
  // A rule's id is its key after `fleet:` (src/rules/fleet-layer.ts).
  const key = keyOrId.startsWith('fleet:') ? keyOrId.slice(6) : keyOrId;
  if (/^all\.[^.]+$/.test(key)) return {};
  const m = /^host\.([A-Za-z0-9_-]{1,64})\.[^.]+$/.exec(key);
  return m ? { host: m[1]! } : undefined;
}

/** An events body: one or more protocol v1 extension messages as NDJSON lines (each ≤ 64 KiB, the whole
 *  ≤ MAX_BODY_BYTES), in the order the agent sent them to its local clients. Header `Nats-Msg-Id` is
 *  `<host>.<agent start ms>.<batch seq>` so a retried publish is stored once. */
export type EventBatch = ExtensionMessage[];

/** A host's entry in the hosts bucket. */
export interface HostAnnouncement {
  /** The hello the agent sends its local clients (its `host` field is this host's name). */
  hello: ExtensionMessage & { type: 'hello' };
  /** When the agent started and when it last refreshed this entry (ms since the epoch). */
  started: number;
  seen: number;
}

/** A request body: a protocol v1 client message (verdict, rule-add, rule-remove, rules-list), or a
 *  snapshot request. `subscribe` is not sent: the stream is the subscription. */
export type FleetRequest = Exclude<ClientMessage, { type: 'subscribe' }> | SnapshotRequest;

export interface SnapshotRequest {
  type: 'snapshot';
  ref?: string;
}

/** A reply body: NDJSON lines of protocol v1 extension messages answering the request.
 *  - verdict: the resulting `verdict` message, or an `error` (a retry of a verdict already applied for
 *    that flow id is answered with the same `verdict`, never applied twice);
 *  - rule-add / rule-remove: the `rule-changed` message, or an `error`;
 *  - rules-list: `rules` messages (the last without `continues`);
 *  - snapshot: `hello`, then a `flow` for every live or pending flow, then `rules` messages. A snapshot
 *    over MAX_BODY_BYTES continues in further replies is NOT done: the agent sends the newest flows
 *    that fit and a last line `{"type":"error","code":"internal","message":"snapshot truncated: …"}`. */
export type FleetReply = ExtensionMessage[];
