// One reader per protocol object shape (docs/protocol.md, "Messages"). Each returns a fresh object
// holding only the fields the spec defines; each throws `Invalid` naming the first bad field. Rules are
// read by the one rule schema (rules/schema.ts), which names every bad field.
import { isIPv4, isIPv6 } from 'node:net';
import {
  ACTIONS, BLOCK_MODES, DIRECTIONS, FAMILIES, LIMITS, PROTOCOLS, U32_MAX,
  type AddressFamily, type Capability, type DecidedBy, type Endpoint, type FlowIdentity, type FlowRecord, type HelloMessage,
  type Platform, type PolicySwitch, type RememberScope, type RemoteHost, type Rule, type RuleSpec, type TokenKind, type Verdict,
} from './messages.js';
import { parseRule, parseRuleSpec, type ReadOptions } from '../rules/schema.js';
import {
  Invalid, Refused, assign, integer, object, oneOf, optBoolean, optInteger, optObject, optOneOf, optString, optToken, string, time,
  type Obj,
} from './validate.js';

/** Rules on the wire follow docs/protocol.md "Versioning": a receiver ignores fields it does not know. */
const WIRE: ReadOptions = { unknownFields: 'ignore' };

export const DECIDED_BY: readonly DecidedBy[] = ['rule', 'user', 'default'];
export const POLICY_SWITCHES: readonly PolicySwitch[] = ['allowPackaged', 'blockUnpackaged', 'defaultAction'];
export const PLATFORMS: readonly Platform[] = ['linux', 'darwin', 'demo'];
export const TOKEN_KINDS: readonly TokenKind[] = ['linux-pidfd-v1', 'darwin-audit-token', 'replay'];
export const CAPABILITIES: readonly Capability[] = ['verdicts', 'end-flows', 'rules', 'bytes', 'host-names', 'verdict-durations', 'verdict-scopes'];
export const REMEMBER_SCOPES: readonly RememberScope[] = ['process', 'endpoint', 'host', 'domain', 'port'];
const POLICY_FIELDS = ['defaultAction', 'blockMode', 'blockUnpackaged', 'allowPackaged'] as const;
const HOST_SOURCES: readonly RemoteHost['source'][] = ['dns', 'reverse', 'extension'];
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

/** hello.mode.history: "off", or the absolute path of the file the extension records into (a client
 *  opens it: no relative path, no control character). */
function historyPath(mode: Obj): string | undefined {
  const v = optString(mode, 'history', 'mode', LIMITS.text);
  if (v === undefined || v === 'off') return v;
  // eslint-disable-next-line no-control-regex
  if (!v.startsWith('/') || /[\u0000-\u001f\u007f]/.test(v)) throw new Invalid('mode.history', '"off" or an absolute path without control characters', v);
  return v;
}

export function verdict(v: Obj, path: string): Verdict {
  const out: Verdict = { action: oneOf(v, 'action', path, ACTIONS), by: oneOf(v, 'by', path, DECIDED_BY) };
  assign(out, 'ruleId', optString(v, 'ruleId', path, LIMITS.id));
  assign(out, 'blockMode', optOneOf(v, 'blockMode', path, BLOCK_MODES));
  assign(out, 'policy', optOneOf(v, 'policy', path, POLICY_SWITCHES));
  assign(out, 'reason', optString(v, 'reason', path, 4096));
  assign(out, 'decider', optString(v, 'decider', path, LIMITS.name));
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

/** A rule spec (rule-add), checked by the one rule schema: the same rule is accepted, and refused
 *  with the same words, here and in a rules file. */
export function ruleSpec(value: unknown, path: string): RuleSpec {
  const checked = parseRuleSpec(value, path, WIRE);
  if (!checked.ok) throw new Refused(path, checked.problems);
  return checked.value;
}

/** A rule as an extension keeps it (rules, rule-changed). */
export function rule(value: unknown, path: string): Rule {
  const checked = parseRule(value, path, WIRE);
  if (!checked.ok) throw new Refused(path, checked.problems);
  return checked.value;
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
    assign(m, 'history', historyPath(mode));
    out.mode = m;
  }
  return out;
}
