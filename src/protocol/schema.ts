// One reader per protocol object shape (docs/protocol.md, "Messages"). Each returns a fresh object
// holding only the fields the spec defines; each throws `Invalid` naming the first bad field.
import { isIPv4, isIPv6 } from 'node:net';
import type {
  Action, AddressFamily, BlockMode, Capability, DecidedBy, Direction, Endpoint, FlowIdentity, FlowRecord, HelloMessage,
  Platform, PolicySwitch, RememberScope, RemoteHost, Rule, RuleDuration, RuleEndpoint, RuleIdentity, RuleSpec, TokenKind, TransportProtocol, Verdict,
} from './messages.js';
import {
  Invalid, asObject, assign, integer, object, oneOf, optBoolean, optInteger, optObject, optOneOf, optString, optTime,
  optToken, string, time, type Obj,
} from './validate.js';

/** Limits on string fields, in UTF-16 code units (documented in docs/protocol.md, "Limits"). */
export const LIMITS = {
  id: 128, // flow ids, rule ids, refs
  name: 255, // names, versions, host names
  text: 4096, // error text, reasons, notes, identity values (a designated requirement can be long)
} as const;
export const U32_MAX = 0xffff_ffff;
/** Highest rule priority: room for the order of a few hundred thousand imported rules. */
export const MAX_RULE_PRIORITY = 1_000_000_000;

export const ACTIONS: readonly Action[] = ['allow', 'block'];
export const BLOCK_MODES: readonly BlockMode[] = ['drop', 'reject'];
export const DECIDED_BY: readonly DecidedBy[] = ['rule', 'user', 'default'];
export const POLICY_SWITCHES: readonly PolicySwitch[] = ['allowPackaged', 'blockUnpackaged', 'defaultAction'];
export const DIRECTIONS: readonly Direction[] = ['outbound', 'inbound'];
export const PROTOCOLS: readonly TransportProtocol[] = ['tcp', 'udp', 'icmp', 'other'];
export const FAMILIES: readonly AddressFamily[] = ['ipv4', 'ipv6'];
export const PLATFORMS: readonly Platform[] = ['linux', 'darwin', 'demo'];
export const TOKEN_KINDS: readonly TokenKind[] = ['linux-pidfd-v1', 'darwin-audit-token', 'replay'];
export const CAPABILITIES: readonly Capability[] = ['verdicts', 'end-flows', 'rules', 'bytes', 'host-names', 'verdict-durations', 'verdict-scopes'];
export const REMEMBER_SCOPES: readonly RememberScope[] = ['process', 'endpoint', 'host', 'domain', 'port'];
const POLICY_FIELDS = ['defaultAction', 'blockMode', 'blockUnpackaged', 'allowPackaged'] as const;
const HOST_SOURCES: readonly RemoteHost['source'][] = ['dns', 'reverse', 'extension'];
const IDENTITY_KINDS: readonly RuleIdentity['kind'][] = ['sha256', 'package', 'path', 'requirement'];
const FLOW_IDENTITY_KINDS: readonly FlowIdentity['kind'][] = ['sha256', 'package', 'requirement'];

function endpoint(o: Obj, key: string, path: string, family: AddressFamily): Endpoint {
  const e = object(o, key, path);
  const at = `${path}.${key}`;
  const address = string(e, 'address', at, 64);
  if (family === 'ipv4' ? !isIPv4(address) : !isIPv6(address)) {
    throw new Invalid(`${at}.address`, `an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address (family is "${family}")`, address);
  }
  return { address, port: integer(e, 'port', at, 0, 65535) };
}

export function verdict(v: Obj, path: string): Verdict {
  const out: Verdict = { action: oneOf(v, 'action', path, ACTIONS), by: oneOf(v, 'by', path, DECIDED_BY) };
  assign(out, 'ruleId', optString(v, 'ruleId', path, LIMITS.id));
  assign(out, 'blockMode', optOneOf(v, 'blockMode', path, BLOCK_MODES));
  assign(out, 'policy', optOneOf(v, 'policy', path, POLICY_SWITCHES));
  assign(out, 'reason', optString(v, 'reason', path, 4096));
  return out;
}

export function flowRecord(f: Obj, path: string): FlowRecord {
  const family = oneOf(f, 'family', path, FAMILIES);
  const id = string(f, 'id', path, LIMITS.id);
  const flowTime = time(f, 'time', path);
  const direction = oneOf(f, 'direction', path, DIRECTIONS);
  const protocol = oneOf(f, 'protocol', path, PROTOCOLS);
  const local = endpoint(f, 'local', path, family);
  const remote = endpoint(f, 'remote', path, family);
  const host = optObject(f, 'remoteHost', path);
  let remoteHost: RemoteHost | undefined;
  if (host) {
    const at = `${path}.remoteHost`;
    remoteHost = { name: string(host, 'name', at, LIMITS.name), source: oneOf(host, 'source', at, HOST_SOURCES) };
  }
  // Read in the order the fields were always checked, so the first bad field named stays the same.
  const token = optToken(f, 'token', path);
  const appToken = optToken(f, 'appToken', path);
  const pid = optInteger(f, 'pid', path, 0, U32_MAX);
  const uid = optInteger(f, 'uid', path, 0, U32_MAX);
  // One literal with every field agents usually send, absent ones as undefined (JSON output is the
  // same): each record then has one hidden class and keeps its fields in the object itself. Fields
  // added one by one after a literal go to a separate property block (40 bytes more per flow).
  const out: FlowRecord = {
    id,
    time: flowTime,
    direction,
    protocol,
    family,
    local,
    remote,
    remoteHost,
    token,
    pid,
    uid,
  };
  // Rare fields (appToken is macOS-only): set only when present.
  if (appToken !== undefined) out.appToken = appToken;
  assign(out, 'ownerError', optString(f, 'ownerError', path, LIMITS.text));
  const pending = optObject(f, 'pending', path);
  if (pending) out.pending = { deadline: time(pending, 'deadline', `${path}.pending`) };
  const v = optObject(f, 'verdict', path);
  if (v) out.verdict = verdict(v, `${path}.verdict`);
  if (out.pending && out.verdict) throw new Invalid(`${path}.verdict`, 'no verdict while the flow is pending', out.verdict);
  assign(out, 'packets', optInteger(f, 'packets', path, 1, Number.MAX_SAFE_INTEGER));
  const identity = optObject(f, 'identity', path);
  if (identity) out.identity = flowIdentity(identity, `${path}.identity`);
  return out;
}

function flowIdentity(o: Obj, path: string): FlowIdentity {
  const kind = oneOf(o, 'kind', path, FLOW_IDENTITY_KINDS);
  const value = string(o, 'value', path, LIMITS.text);
  if (kind === 'sha256' && !/^[0-9a-f]{64}$/.test(value)) throw new Invalid(`${path}.value`, '64 lowercase hex digits (a SHA-256)', value);
  const out: FlowIdentity = { kind, value };
  assign(out, 'package', optString(o, 'package', path, LIMITS.name));
  if (kind === 'package' && out.package === undefined) throw new Invalid(`${path}.package`, 'the package that vouches for the executable', undefined, true);
  assign(out, 'path', optString(o, 'path', path, LIMITS.text));
  return out;
}

function ruleIdentity(o: Obj, path: string): RuleIdentity {
  const out: RuleIdentity = { kind: oneOf(o, 'kind', path, IDENTITY_KINDS), value: string(o, 'value', path, LIMITS.text) };
  assign(out, 'package', optString(o, 'package', path, LIMITS.name));
  assign(out, 'label', optString(o, 'label', path, LIMITS.name));
  return out;
}

function ruleEndpoint(o: Obj, path: string): RuleEndpoint {
  const out: RuleEndpoint = {};
  assign(out, 'host', optString(o, 'host', path, LIMITS.name));
  assign(out, 'domain', optString(o, 'domain', path, LIMITS.name));
  assign(out, 'address', optString(o, 'address', path, 64));
  assign(out, 'cidr', optString(o, 'cidr', path, 64));
  assign(out, 'port', optInteger(o, 'port', path, 0, 65535));
  assign(out, 'family', optOneOf(o, 'family', path, FAMILIES));
  const range = o['portRange'];
  if (range !== undefined && range !== null) {
    const at = `${path}.portRange`;
    const ok = Array.isArray(range) && range.length === 2 && range.every((p) => Number.isInteger(p) && p >= 0 && p <= 65535) && range[0] <= range[1];
    if (!ok) throw new Invalid(at, '[low, high]: two port numbers with low ≤ high', range);
    out.portRange = [range[0] as number, range[1] as number];
  }
  if (out.address !== undefined && !isIPv4(out.address) && !isIPv6(out.address)) throw new Invalid(`${path}.address`, 'an IP address', out.address);
  if (out.cidr !== undefined && !isCidr(out.cidr)) throw new Invalid(`${path}.cidr`, 'an address/prefix, e.g. 10.0.0.0/8', out.cidr);
  return out;
}

function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return false;
  const address = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  const n = Number(bits);
  return (isIPv4(address) && n <= 32) || (isIPv6(address) && n <= 128);
}

function duration(o: Obj, path: string): RuleDuration {
  const kind = oneOf(o, 'kind', path, ['once', 'process', 'until', 'always'] as const);
  switch (kind) {
    case 'once':
    case 'always':
      return { kind };
    case 'process': {
      const token = optToken(o, 'token', path);
      if (token === undefined) throw new Invalid(`${path}.token`, 'the token of the process instance', undefined, true);
      return { kind, token };
    }
    case 'until':
      return { kind, until: time(o, 'until', path) };
  }
}

export function ruleSpec(o: Obj, path: string): RuleSpec {
  const out: RuleSpec = { action: oneOf(o, 'action', path, ACTIONS), duration: duration(object(o, 'duration', path), `${path}.duration`) };
  assign(out, 'blockMode', optOneOf(o, 'blockMode', path, BLOCK_MODES));
  const identity = optObject(o, 'identity', path);
  if (identity) out.identity = ruleIdentity(identity, `${path}.identity`);
  const ep = optObject(o, 'endpoint', path);
  if (ep) out.endpoint = ruleEndpoint(ep, `${path}.endpoint`);
  assign(out, 'protocol', optOneOf(o, 'protocol', path, PROTOCOLS));
  assign(out, 'direction', optOneOf(o, 'direction', path, DIRECTIONS));
  assign(out, 'session', optBoolean(o, 'session', path));
  assign(out, 'note', optString(o, 'note', path, LIMITS.text, 0));
  assign(out, 'enabled', optBoolean(o, 'enabled', path));
  assign(out, 'priority', optInteger(o, 'priority', path, 0, MAX_RULE_PRIORITY));
  return out;
}

export function rule(value: unknown, path: string): Rule {
  const o = asObject(value, path);
  const spec = ruleSpec(o, path);
  const out: Rule = {
    ...spec,
    id: string(o, 'id', path, LIMITS.id),
    created: time(o, 'created', path),
    hits: integer(o, 'hits', path, 0, Number.MAX_SAFE_INTEGER),
    enabled: optBoolean(o, 'enabled', path) ?? true,
  };
  assign(out, 'lastHit', optTime(o, 'lastHit', path));
  return out;
}

function nameVersion(o: Obj, key: string, path: string): { name: string; version: string } {
  const v = object(o, key, path);
  const at = `${path}.${key}`;
  return { name: string(v, 'name', at, LIMITS.name), version: string(v, 'version', at, LIMITS.name) };
}

export function peerInfo(o: Obj, key: string): { name: string; version: string } {
  return nameVersion(o, key, '');
}

export function hello(o: Obj): HelloMessage {
  const caps = o['capabilities'];
  if (!Array.isArray(caps)) throw new Invalid('capabilities', 'an array of capability names', caps);
  // Unknown capability names are dropped, not refused: a newer extension may announce more (see "Versioning").
  const capabilities = caps.filter((c): c is Capability => typeof c === 'string' && (CAPABILITIES as readonly string[]).includes(c));
  const out: HelloMessage = {
    type: 'hello',
    protocol: integer(o, 'protocol', '', 1, U32_MAX),
    extension: nameVersion(o, 'extension', ''),
    platform: oneOf(o, 'platform', '', PLATFORMS),
    host: string(o, 'host', '', LIMITS.name),
    capabilities: [...new Set(capabilities)],
    tokenKind: oneOf(o, 'tokenKind', '', TOKEN_KINDS),
  };
  const mode = optObject(o, 'mode', '');
  if (mode) {
    const m: NonNullable<HelloMessage['mode']> = {};
    assign(m, 'failOpen', optBoolean(mode, 'failOpen', 'mode'));
    assign(m, 'attribution', optString(mode, 'attribution', 'mode', LIMITS.name));
    assign(m, 'defaultAction', optOneOf(mode, 'defaultAction', 'mode', ACTIONS));
    assign(m, 'timeoutMs', optInteger(mode, 'timeoutMs', 'mode', 0, U32_MAX));
    assign(m, 'passive', optBoolean(mode, 'passive', 'mode'));
    assign(m, 'blockMode', optOneOf(mode, 'blockMode', 'mode', BLOCK_MODES));
    assign(m, 'blockUnpackaged', optBoolean(mode, 'blockUnpackaged', 'mode'));
    assign(m, 'allowPackaged', optBoolean(mode, 'allowPackaged', 'mode'));
    const from = optObject(mode, 'policyFrom', 'mode');
    if (from) {
      const f: NonNullable<NonNullable<HelloMessage['mode']>['policyFrom']> = {};
      for (const key of POLICY_FIELDS) assign(f, key, optString(from, key, 'mode.policyFrom', LIMITS.name));
      m.policyFrom = f;
    }
    out.mode = m;
  }
  return out;
}
