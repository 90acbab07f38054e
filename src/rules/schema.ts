// The one rule schema: every rule read from outside (rules file, protocol message, import, CLI) is
// checked here, by the same code, and normalised (lowercase host names, canonical addresses and CIDR
// blocks, lowercase hashes), so the matcher can compare plain strings. Problems name the rule and the
// field. The protocol decoder (protocol/schema.ts) calls these readers with `unknownFields: 'ignore'`,
// as docs/protocol.md "Versioning" asks of a receiver; a rules file refuses unknown fields, so a
// misspelt constraint is reported rather than dropped (which would make the rule broader).
import {
  ACTIONS, BLOCK_MODES, DIRECTIONS, FAMILIES, IDENTITY_KINDS, LIMITS, MAX_RULE_PRIORITY, PROTOCOLS,
  type Rule, type RuleDuration, type RuleEndpoint, type RuleIdentity, type RuleSpec,
} from '../protocol/messages.js';
import { isToken, MAX_TOKEN_BYTES } from '../protocol/validate.js';
import { canonicalIp, formatCidr, parseCidr } from './ip.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** What to do with a field the schema does not know: a file refuses it, the protocol ignores it. */
export interface ReadOptions {
  unknownFields?: 'refuse' | 'ignore';
}

type Obj = Record<string, unknown>;

/** Collects problems for one object; each names `where` and the field. */
class Reader {
  constructor(readonly where: string, readonly problems: string[], readonly options: ReadOptions = {}) {}

  fail(field: string, message: string): undefined {
    this.problems.push(`${this.where}${field ? ` ${field}` : ''}: ${message}`);
    return undefined;
  }

  /** A copy holding the object's own fields, without a prototype (nothing read can come from one),
   *  and without null ones: null counts as absent (encoders in Swift or C often write null for "none"). */
  object(value: unknown, field: string): Obj | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.fail(field, `must be an object, got ${show(value)}`);
    const out: Obj = Object.create(null) as Obj;
    for (const [key, v] of Object.entries(value)) if (v !== null) out[key] = v;
    return out;
  }

  onlyKeys(o: Obj, field: string, allowed: readonly string[]): void {
    if (this.options.unknownFields === 'ignore') return;
    for (const key of Object.keys(o)) {
      if (!allowed.includes(key)) this.fail(field ? `${field}.${key}` : key, `is not a known field (known: ${allowed.join(', ')})`);
    }
  }

  oneOf<T extends string>(value: unknown, field: string, options: readonly T[]): T | undefined {
    if (typeof value === 'string' && (options as readonly string[]).includes(value)) return value as T;
    return this.fail(field, `must be one of ${options.map((o) => `"${o}"`).join(', ')}, got ${show(value)}`);
  }

  string(value: unknown, field: string, max: number, min = 1): string | undefined {
    if (typeof value !== 'string') return this.fail(field, `must be a string, got ${show(value)}`);
    if (value.length < min) return this.fail(field, 'must not be empty');
    if (value.length > max) return this.fail(field, `is longer than ${max} characters`);
    return value;
  }

  integer(value: unknown, field: string, min: number, max: number): number | undefined {
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    return this.fail(field, `must be a whole number from ${min} to ${max}, got ${show(value)}`);
  }

  time(value: unknown, field: string): number | undefined {
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 8.64e15) return Math.floor(value);
    return this.fail(field, `must be a time in milliseconds since 1970, got ${show(value)}`);
  }

  boolean(value: unknown, field: string): boolean | undefined {
    if (typeof value === 'boolean') return value;
    return this.fail(field, `must be true or false, got ${show(value)}`);
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const HOST_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** Lowercase, no trailing dot; undefined when not a valid DNS name. */
export function normalizeHostName(text: string): string | undefined {
  const name = text.toLowerCase().replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return undefined;
  return name.split('.').every((label) => HOST_LABEL.test(label)) ? name : undefined;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9+._~:-]*$/;

function readIdentity(r: Reader, value: unknown): RuleIdentity | undefined {
  const o = r.object(value, 'identity');
  if (!o) return undefined;
  r.onlyKeys(o, 'identity', ['kind', 'value', 'package', 'label']);
  const kind = r.oneOf(o['kind'], 'identity.kind', IDENTITY_KINDS);
  let text = r.string(o['value'], 'identity.value', LIMITS.text);
  if (!kind || text === undefined) return undefined;
  const out: RuleIdentity = { kind, value: text };
  if (kind === 'sha256') {
    text = text.toLowerCase().replace(/^sha256:/, '');
    if (!SHA256_HEX.test(text)) return r.fail('identity.value', 'must be the 64 hex digits of a SHA-256 hash');
    out.value = text;
  }
  if ((kind === 'package' || kind === 'path') && !text.startsWith('/')) {
    return r.fail('identity.value', `must be an absolute executable path for a ${kind} identity, got ${show(text)}`);
  }
  if (kind === 'package' && text.endsWith('/')) return r.fail('identity.value', `must name an executable, not a folder, got ${show(text)}`);
  if (kind === 'path' && text.endsWith('/') && text.length === 1) return r.fail('identity.value', 'the folder "/" would cover every program: leave the identity out instead');
  if (kind === 'package') {
    const pkg = r.string(o['package'], 'identity.package', LIMITS.name);
    if (pkg === undefined) return undefined;
    if (!PACKAGE_NAME.test(pkg)) return r.fail('identity.package', `is not a package name: ${show(pkg)}`);
    out.package = pkg;
  } else if (o['package'] !== undefined) {
    return r.fail('identity.package', `is only for a "package" identity, not "${kind}"`);
  }
  if (o['label'] !== undefined) {
    const label = r.string(o['label'], 'identity.label', LIMITS.name, 0);
    if (label) out.label = label;
  }
  return out;
}

function readPort(r: Reader, value: unknown, field: string): number | undefined {
  return r.integer(value, field, 0, 65535);
}

function readEndpoint(r: Reader, value: unknown): RuleEndpoint | undefined {
  const o = r.object(value, 'endpoint');
  if (!o) return undefined;
  r.onlyKeys(o, 'endpoint', ['host', 'domain', 'address', 'cidr', 'port', 'portRange', 'family']);
  const out: RuleEndpoint = {};
  const remotes = ['host', 'domain', 'address', 'cidr'].filter((k) => o[k] !== undefined);
  if (remotes.length > 1) return r.fail('endpoint', `has ${remotes.join(' and ')}: a rule names at most one of host, domain, address, cidr`);
  if (o['host'] !== undefined) {
    const text = r.string(o['host'], 'endpoint.host', LIMITS.name);
    if (text === undefined) return undefined;
    const name = normalizeHostName(text);
    if (!name) return r.fail('endpoint.host', `is not a host name: ${show(text)}`);
    out.host = name;
  }
  if (o['domain'] !== undefined) {
    const text = r.string(o['domain'], 'endpoint.domain', LIMITS.name);
    if (text === undefined) return undefined;
    if (text.startsWith('*.') || text.startsWith('.')) {
      return r.fail('endpoint.domain', `write the suffix without "*." or a leading dot ("example.com" already covers its subdomains), got ${show(text)}`);
    }
    const name = normalizeHostName(text);
    if (!name) return r.fail('endpoint.domain', `is not a domain name: ${show(text)}`);
    out.domain = name;
  }
  if (o['address'] !== undefined) {
    const text = r.string(o['address'], 'endpoint.address', 64);
    if (text === undefined) return undefined;
    const canonical = canonicalIp(text);
    if (!canonical) return r.fail('endpoint.address', `is not an IPv4 or IPv6 address: ${show(text)}`);
    out.address = canonical;
  }
  if (o['cidr'] !== undefined) {
    const text = r.string(o['cidr'], 'endpoint.cidr', 64);
    if (text === undefined) return undefined;
    const parsed = parseCidr(text);
    if (!parsed) return r.fail('endpoint.cidr', `is not an address/prefix such as 10.0.0.0/8 or 2001:db8::/32: ${show(text)}`);
    if (parsed.hostBitsSet) {
      return r.fail('endpoint.cidr', `${show(text)} has bits set after the /${parsed.cidr.prefix} prefix (did you mean ${formatCidr(parsed.cidr)}?)`);
    }
    out.cidr = formatCidr(parsed.cidr);
  }
  if (o['port'] !== undefined && o['portRange'] !== undefined) return r.fail('endpoint', 'has both port and portRange: use one');
  if (o['port'] !== undefined) {
    const port = readPort(r, o['port'], 'endpoint.port');
    if (port === undefined) return undefined;
    out.port = port;
  }
  if (o['portRange'] !== undefined) {
    const range = o['portRange'];
    if (!Array.isArray(range) || range.length !== 2) return r.fail('endpoint.portRange', `must be [low, high], got ${show(range)}`);
    const low = readPort(r, range[0], 'endpoint.portRange[0]');
    const high = readPort(r, range[1], 'endpoint.portRange[1]');
    if (low === undefined || high === undefined) return undefined;
    if (low > high) return r.fail('endpoint.portRange', `low ${low} is above high ${high}`);
    if (low === high) out.port = low; // one port: store it as such, so its specificity is a single port's
    else out.portRange = [low, high];
  }
  if (o['family'] !== undefined) {
    const family = r.oneOf(o['family'], 'endpoint.family', FAMILIES);
    if (family === undefined) return undefined;
    // An address or block already has a family: a different one could never match.
    const named = out.address ?? out.cidr;
    if (named !== undefined && (named.includes(':') ? 'ipv6' : 'ipv4') !== family) {
      return r.fail('endpoint.family', `is ${family}, but ${show(named)} is not: the rule could never match`);
    }
    out.family = family;
  }
  if (Object.keys(out).length === 0) return r.fail('endpoint', 'is empty: leave it out to match any remote endpoint');
  return out;
}

function readDuration(r: Reader, value: unknown): RuleDuration | undefined {
  const o = r.object(value, 'duration');
  if (!o) return undefined;
  const kind = r.oneOf(o['kind'], 'duration.kind', ['once', 'process', 'until', 'always'] as const);
  switch (kind) {
    case undefined:
      return undefined;
    case 'once':
    case 'always':
      r.onlyKeys(o, 'duration', ['kind']);
      return { kind };
    case 'process': {
      r.onlyKeys(o, 'duration', ['kind', 'token']);
      const token = r.string(o['token'], 'duration.token', 1024);
      if (token === undefined) return undefined;
      if (!isToken(token)) return r.fail('duration.token', `must be the base64 token of the process instance (padded, 1 to ${MAX_TOKEN_BYTES} bytes)`);
      return { kind, token };
    }
    case 'until': {
      r.onlyKeys(o, 'duration', ['kind', 'until']);
      const until = r.time(o['until'], 'duration.until');
      return until === undefined ? undefined : { kind, until };
    }
  }
}

const SPEC_KEYS = ['action', 'blockMode', 'identity', 'endpoint', 'protocol', 'direction', 'duration', 'session', 'note', 'enabled', 'priority'];
const RULE_KEYS = [...SPEC_KEYS, 'id', 'created', 'lastHit', 'hits'];

function readSpec(r: Reader, o: Obj): RuleSpec | undefined {
  const action = r.oneOf(o['action'], 'action', ACTIONS);
  const duration = readDuration(r, o['duration']);
  const spec: Partial<RuleSpec> = { action, duration };
  if (o['blockMode'] !== undefined) {
    const mode = r.oneOf(o['blockMode'], 'blockMode', BLOCK_MODES);
    if (mode && action === 'allow') r.fail('blockMode', 'is only for block rules');
    spec.blockMode = mode;
  }
  if (o['identity'] !== undefined) spec.identity = readIdentity(r, o['identity']);
  if (o['endpoint'] !== undefined) spec.endpoint = readEndpoint(r, o['endpoint']);
  if (o['protocol'] !== undefined) spec.protocol = r.oneOf(o['protocol'], 'protocol', PROTOCOLS);
  if (o['direction'] !== undefined) spec.direction = r.oneOf(o['direction'], 'direction', DIRECTIONS);
  if (o['note'] !== undefined) spec.note = r.string(o['note'], 'note', LIMITS.text, 0);
  if (o['enabled'] !== undefined) spec.enabled = r.boolean(o['enabled'], 'enabled');
  if (o['priority'] !== undefined) spec.priority = r.integer(o['priority'], 'priority', 0, MAX_RULE_PRIORITY);
  // Only `true` is kept: a rule is stored unless it says otherwise.
  if (o['session'] !== undefined && r.boolean(o['session'], 'session')) spec.session = true;
  if (spec.endpoint && (spec.endpoint.port !== undefined || spec.endpoint.portRange) && spec.protocol && spec.protocol !== 'tcp' && spec.protocol !== 'udp') {
    r.fail('endpoint', `has a port, but protocol "${spec.protocol}" has no ports`);
  }
  if (r.problems.length > 0 || !action || !duration) return undefined;
  return dropUndefined(spec as RuleSpec);
}

function dropUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

/** Checks a rule specification (what a client asks to add). */
export function parseRuleSpec(value: unknown, where = 'rule', options?: ReadOptions): Checked<RuleSpec> {
  const r = new Reader(where, [], options);
  const o = r.object(value, '');
  if (!o) return { ok: false, problems: r.problems };
  r.onlyKeys(o, '', SPEC_KEYS);
  const spec = readSpec(r, o);
  return spec && r.problems.length === 0 ? { ok: true, value: spec } : { ok: false, problems: r.problems };
}

/** Describes which rule a problem is about: its position and, when readable, its id. */
export function ruleWhere(value: unknown, index: number): string {
  const id = typeof value === 'object' && value !== null ? (value as Obj)['id'] : undefined;
  return `rules[${index}]${typeof id === 'string' ? ` (id "${id.slice(0, 40)}")` : ''}`;
}

const RULE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Checks a stored rule (spec + id, created, hits, lastHit). */
export function parseRule(value: unknown, where = 'rule', options?: ReadOptions): Checked<Rule> {
  const r = new Reader(where, [], options);
  const o = r.object(value, '');
  if (!o) return { ok: false, problems: r.problems };
  r.onlyKeys(o, '', RULE_KEYS);
  const id = r.string(o['id'], 'id', LIMITS.id);
  if (id !== undefined && !RULE_ID.test(id)) r.fail('id', 'may hold only letters, digits and . _ : -');
  const created = r.time(o['created'], 'created');
  const hits = r.integer(o['hits'] ?? 0, 'hits', 0, Number.MAX_SAFE_INTEGER);
  const lastHit = o['lastHit'] === undefined ? undefined : r.time(o['lastHit'], 'lastHit');
  const spec = readSpec(r, o);
  if (!spec || id === undefined || created === undefined || hits === undefined || r.problems.length > 0) {
    return { ok: false, problems: r.problems };
  }
  const rule: Rule = { ...spec, id, created, hits, enabled: spec.enabled ?? true };
  if (lastHit !== undefined) rule.lastHit = lastHit;
  return { ok: true, value: rule };
}
