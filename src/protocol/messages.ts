// The extension socket protocol v1 as TypeScript types. docs/protocol.md is the normative text;
// these types mirror it one to one. Validation lives in codec.ts and schema.ts (rules: rules/schema.ts),
// never here.

export const PROTOCOL_VERSION = 1;
/** Longest accepted line in bytes, newline excluded. Longer lines are discarded while being read. */
export const MAX_LINE_BYTES = 64 * 1024;

export type Platform = 'linux' | 'darwin' | 'demo';
/** How the extension's tokens are laid out (see docs/protocol.md, "Tokens"). */
export type TokenKind = 'linux-pidfd-v1' | 'darwin-audit-token' | 'replay';
export type Capability =
  | 'verdicts' // accepts `verdict` for pending flows
  | 'end-flows' // can end a live, already allowed flow (block on a non-pending flow)
  | 'rules' // keeps rules: rule-add / rule-remove / rules-list
  | 'bytes' // sends byte counters
  | 'host-names' // fills remoteHost
  | 'verdict-durations' // a remembered verdict may carry `forMs` and `session`
  | 'verdict-scopes'; // a remembered verdict may have scope host, domain or port

// The closed value sets of the protocol, each written once: the type is read from its list, and the
// decoders (protocol/schema.ts, rules/schema.ts) check against the same list.
export const DIRECTIONS = ['outbound', 'inbound'] as const;
export type Direction = (typeof DIRECTIONS)[number];
export const PROTOCOLS = ['tcp', 'udp', 'icmp', 'other'] as const;
export type TransportProtocol = (typeof PROTOCOLS)[number];
export const FAMILIES = ['ipv4', 'ipv6'] as const;
export type AddressFamily = (typeof FAMILIES)[number];
export const ACTIONS = ['allow', 'block'] as const;
export type Action = (typeof ACTIONS)[number];
export const BLOCK_MODES = ['drop', 'reject'] as const;
export type BlockMode = (typeof BLOCK_MODES)[number];
export type DecidedBy = 'rule' | 'user' | 'default';
/** sha256: executable hash; package: package + path vouched for by the package manager; path: path
 *  only (weaker; a value ending in "/" is a folder: every executable under it); requirement: macOS
 *  designated requirement text. */
export const IDENTITY_KINDS = ['sha256', 'package', 'path', 'requirement'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

/** Limits on string fields, in UTF-16 code units (docs/protocol.md, "Limits"). */
export const LIMITS = {
  id: 128, // flow ids, rule ids, refs
  name: 255, // names, versions, host names
  text: 4096, // error text, reasons, notes, identity values (a designated requirement can be long)
} as const;
export const U32_MAX = 0xffff_ffff;
/** Highest rule priority: room for the order of a few hundred thousand imported rules. */
export const MAX_RULE_PRIORITY = 1_000_000_000;

export interface Endpoint {
  address: string;
  port: number;
}

export interface RemoteHost {
  name: string;
  /** Where the name came from: a DNS answer seen on the wire, a reverse lookup, or the OS (NE filter). */
  source: 'dns' | 'reverse' | 'extension';
}

export interface Verdict {
  action: Action;
  by: DecidedBy;
  ruleId?: string;
  blockMode?: BlockMode;
  /** With `by: "default"`: the policy switch that decided (no rule matched). */
  policy?: PolicySwitch;
  /** Why, in words (e.g. which switch and what it saw). */
  reason?: string;
  /** With `by: "user"`: who decided, as the extension knows them — `nats:<user>@<server>` for a
   *  request over NATS (docs/fleet.md), `local:<user>` for a client of the Unix socket (its uid as
   *  the kernel reported it). Shown to people; never matched. */
  decider?: string;
}

export type PolicySwitch = 'allowPackaged' | 'blockUnpackaged' | 'defaultAction';

export interface FlowRecord {
  id: string;
  /** Milliseconds since the Unix epoch when the extension saw the flow. */
  time: number;
  direction: Direction;
  protocol: TransportProtocol;
  family: AddressFamily;
  local: Endpoint;
  remote: Endpoint;
  remoteHost?: RemoteHost;
  /** Opaque process token (base64) of the process that opened the flow. */
  token?: string;
  /** Token of the responsible app when it differs (macOS sourceAppAuditToken vs sourceProcessAuditToken). */
  appToken?: string;
  /** Hints only: never an identity. */
  pid?: number;
  uid?: number;
  /** Why there is no token (owner not found), in words. */
  ownerError?: string;
  /** Present while the flow waits for a verdict. */
  pending?: { deadline: number };
  verdict?: Verdict;
  /** Packets of this conversation the extension judged, when more than one: a blocked UDP sender's
   *  datagrams, a blocked connect's retried SYNs (one row, not one per packet). */
  packets?: number;
  /** The code identity the extension itself established for this flow's token, for the exact process
   *  instance (the flowtop agent: the executable its connect record names, hashed or vouched for by
   *  a package, as identity rules match it). Absent when it established none. A client shows it when
   *  its own lookup could not identify the process (e.g. it had exited); it is never a PID's word. */
  identity?: FlowIdentity;
}

/** A flow's code identity as the extension established it: the rule identity's shape, without the
 *  weak `path` kind (a path names no code), plus the executable's path as the extension saw it. */
export interface FlowIdentity {
  kind: Exclude<IdentityKind, 'path'>;
  value: string;
  package?: string;
  /** The executable's path when the identity was established (shown, never matched). */
  path?: string;
}

export interface RuleIdentity {
  kind: IdentityKind;
  value: string;
  package?: string;
  /** Shown to people; never matched. */
  label?: string;
}

export interface RuleEndpoint {
  host?: string;
  /** Domain suffix: "example.com" matches example.com and *.example.com. */
  domain?: string;
  address?: string;
  cidr?: string;
  port?: number;
  portRange?: [number, number];
  /** Only remote addresses of this family (an IPv4-mapped IPv6 address counts as IPv4). */
  family?: AddressFamily;
}

export type RuleDuration =
  | { kind: 'once' }
  | { kind: 'process'; token: string }
  | { kind: 'until'; until: number }
  | { kind: 'always' };

export interface RuleSpec {
  action: Action;
  blockMode?: BlockMode;
  identity?: RuleIdentity;
  endpoint?: RuleEndpoint;
  protocol?: TransportProtocol;
  direction?: Direction;
  duration: RuleDuration;
  /** Kept in memory only: the extension forgets it when it restarts, and never writes it to its
   *  rules file ("until restart"). Absent: stored like any rule. */
  session?: boolean;
  note?: string;
  enabled?: boolean;
  /** Ranks above specificity: among matching rules the highest priority wins (absent: 0). Set by
   *  imports that must keep another firewall's order (docs/rules.md, "Priority"). */
  priority?: number;
}

export interface Rule extends RuleSpec {
  id: string;
  created: number;
  lastHit?: number;
  hits: number;
  enabled: boolean;
}

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  extension: { name: string; version: string };
  platform: Platform;
  host: string;
  capabilities: Capability[];
  tokenKind: TokenKind;
  /** Agent settings a person should see (fail-open or closed, how owners are found, defaults). */
  mode?: {
    failOpen?: boolean;
    attribution?: string;
    defaultAction?: Action;
    timeoutMs?: number;
    passive?: boolean;
    /** The policy the extension applies to flows no rule matches (see `rules policy`): how a default
     *  block is enforced, and the two switches. */
    blockMode?: BlockMode;
    blockUnpackaged?: boolean;
    allowPackaged?: boolean;
    /** Where each part of the policy comes from, in words (e.g. "--default block (the rules file says allow)"). */
    policyFrom?: { defaultAction?: string; blockMode?: string; blockUnpackaged?: string; allowPackaged?: string };
    /** Where the extension records its connection history: an absolute path on its host, or "off". */
    history?: string;
  };
}

export interface FlowMessage {
  type: 'flow';
  flow: FlowRecord;
}

export interface BytesMessage {
  type: 'bytes';
  /** Cumulative counters since the flow began (not deltas). */
  counters: Array<{ id: string; rx: number; tx: number }>;
  time: number;
}

export interface EndMessage {
  type: 'end';
  id: string;
  time: number;
  reason?: string;
}

export interface VerdictMessage {
  type: 'verdict';
  id: string;
  time: number;
  verdict: Verdict;
}

export interface RulesMessage {
  type: 'rules';
  rules: Rule[];
  /** True when more `rules` messages follow to complete this snapshot (a snapshot may exceed one line). */
  continues?: boolean;
  /** The `ref` of the `rules-list` this answers, when it had one. */
  ref?: string;
}

export interface RuleChangedMessage {
  type: 'rule-changed';
  op: 'added' | 'updated' | 'removed';
  rule: Rule;
  /** The `ref` of the `rule-add` / `rule-remove` that caused the change, when it had one. */
  ref?: string;
}

export type ErrorCode =
  | 'bad-json'
  | 'bad-message'
  | 'unknown-type'
  | 'line-too-long'
  | 'incomplete-line'
  | 'version-mismatch'
  | 'not-authorised'
  | 'unknown-flow'
  | 'not-pending'
  | 'not-supported'
  | 'unknown-rule'
  | 'out-of-order'
  | 'too-many-errors'
  | 'internal';

export interface ErrorMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The `ref` of the client message this answers, when it had one. */
  ref?: string;
}

export type ExtensionMessage =
  | HelloMessage
  | FlowMessage
  | BytesMessage
  | EndMessage
  | VerdictMessage
  | RulesMessage
  | RuleChangedMessage
  | ErrorMessage;

export type Remember = 'once' | 'process' | 'always';
/** What a remembered verdict's rule covers besides the process: nothing more (`process`), the
 *  remote host and port (`endpoint`), the remote host on any port (`host`), the host name's
 *  registrable domain and its subdomains (`domain`), or any remote on this port (`port`). */
export type RememberScope = 'process' | 'endpoint' | 'host' | 'domain' | 'port';

export interface SubscribeMessage {
  type: 'subscribe';
  protocol: number;
  client: { name: string; version: string };
  ref?: string;
}

export interface ClientVerdictMessage {
  type: 'verdict';
  id: string;
  action: Action;
  remember: Remember;
  /** For remember process/always: the rule covers the process identity alone, or identity + remote endpoint. */
  scope?: RememberScope;
  /** With remember `always`: the rule expires this many milliseconds after the extension got the
   *  verdict (its own clock), as a rule with duration `until`. Needs `verdict-durations`. */
  forMs?: number;
  /** With remember `always`: the rule is kept in memory only, until the extension restarts.
   *  Needs `verdict-durations`. */
  session?: boolean;
  blockMode?: BlockMode;
  ref?: string;
}

export interface RuleAddMessage {
  type: 'rule-add';
  rule: RuleSpec;
  ref?: string;
}

export interface RuleRemoveMessage {
  type: 'rule-remove';
  id: string;
  ref?: string;
}

export interface RulesListMessage {
  type: 'rules-list';
  ref?: string;
}

export type ClientMessage =
  | SubscribeMessage
  | ClientVerdictMessage
  | RuleAddMessage
  | RuleRemoveMessage
  | RulesListMessage;
