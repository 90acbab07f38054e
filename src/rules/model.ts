// The rule model beside the schema (schema.ts checks rules read from outside): rule ids, the identity
// keys rules are matched by, what makes two rules the same, and descriptions for people.
import { randomBytes } from 'node:crypto';
import type { FlowIdentity, Rule, RuleDuration, RuleEndpoint, RuleIdentity, RuleSpec } from '../protocol/messages.js';

export type { Rule, RuleSpec, RuleIdentity, RuleEndpoint, RuleDuration };

/** A fresh rule id: "r" + 12 hex digits, not in `taken`. */
export function newRuleId(taken: (id: string) => boolean = () => false): string {
  for (;;) {
    const id = `r${randomBytes(6).toString('hex')}`;
    if (!taken(id)) return id;
  }
}

/** A rule from a checked spec: id, creation time, no hits yet. */
export function createRule(spec: RuleSpec, now: number, id: string = newRuleId()): Rule {
  return { ...spec, id, created: now, hits: 0, enabled: spec.enabled ?? true };
}

/** A path identity naming a folder ("/Applications/Utilities/"): every program under it. */
export function isFolderPath(path: string): boolean {
  return path.endsWith('/');
}

/** The string an attribution's `identity` must equal for this rule identity to match; undefined for
 *  path-only identities, which match the attribution's path instead. */
export function identityKey(identity: RuleIdentity): string | undefined {
  switch (identity.kind) {
    case 'sha256':
      return `sha256:${identity.value}`;
    case 'package':
      return `package:${identity.package ?? ''}:${identity.value}`;
    case 'requirement':
      return identity.value;
    case 'path':
      return undefined;
  }
}

/** The rule identity for an attribution identity string ("sha256:HEX", "package:NAME:/path", DR text). */
export function identityFromKey(key: string, label?: string): RuleIdentity | undefined {
  let identity: RuleIdentity | undefined;
  if (key.startsWith('sha256:')) identity = { kind: 'sha256', value: key.slice(7).toLowerCase() };
  else if (key.startsWith('package:')) {
    const rest = key.slice(8);
    const slash = rest.indexOf(':/');
    if (slash > 0) identity = { kind: 'package', package: rest.slice(0, slash), value: rest.slice(slash + 1) };
  } else if (key.length > 0) identity = { kind: 'requirement', value: key };
  if (identity && label) identity.label = label;
  return identity;
}

/** A flow's identity for the `flow` message (docs/protocol.md, `flow.identity`) from a securely
 *  established identity key and the executable's path; undefined for a key of no known form. */
export function flowIdentityFromKey(key: string, path?: string): FlowIdentity | undefined {
  const rule = identityFromKey(key);
  if (!rule || rule.kind === 'path') return undefined;
  const out: FlowIdentity = { kind: rule.kind, value: rule.value };
  if (rule.package !== undefined) out.package = rule.package;
  if (path !== undefined) out.path = path;
  return out;
}

/** What makes two rules the same rule (for import): everything but id, times, counters, note. A
 *  disabled rule is not a copy of an enabled one: dropping either would change what is decided. */
export function ruleContentKey(rule: RuleSpec): string {
  const { action, blockMode, identity, endpoint, protocol, direction, duration, session } = rule;
  return JSON.stringify([action, blockMode ?? null, identity ? [identity.kind, identity.package ?? null, identity.value] : null,
    endpoint ? [endpoint.host, endpoint.domain, endpoint.address, endpoint.cidr, endpoint.port, endpoint.portRange, endpoint.family] : null,
    protocol ?? null, direction ?? null, duration, rule.enabled ?? true, rule.priority ?? 0, session ?? false]);
}

// ---- Descriptions for people -------------------------------------------------------------------

/** Text on one line for a terminal: notes may hold line breaks and control characters (an OpenSnitch
 *  description, a LuLu name) that would break a table or move the cursor, or bidi controls that
 *  would reorder what follows them (see text/controls.ts). */
export function singleLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]+/g, ' ').replace(/ {2,}/g, ' ').trim();
}

export function describeIdentity(identity: RuleIdentity | undefined): string {
  if (!identity) return 'any process';
  const label = identity.label ? `${identity.label} ` : '';
  switch (identity.kind) {
    case 'sha256':
      return `${label}(sha256 ${identity.value.slice(0, 12)}…)`;
    case 'package':
      return `${identity.value} (package ${identity.package ?? '?'})`;
    case 'path':
      return identity.value.endsWith('/') ? `any program under ${identity.value} (path only, weaker)` : `${identity.value} (path only, weaker)`;
    case 'requirement':
      return `${label}(requirement ${identity.value.length > 40 ? `${identity.value.slice(0, 39)}…` : identity.value})`;
  }
}

export function describeEndpoint(endpoint: RuleEndpoint | undefined): string {
  if (!endpoint) return 'anywhere';
  let where = 'any address';
  if (endpoint.host) where = endpoint.host;
  else if (endpoint.domain) where = `*.${endpoint.domain}`;
  else if (endpoint.address) where = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  else if (endpoint.cidr) where = endpoint.cidr;
  if (endpoint.family) where += where === 'any address' ? ` (${endpoint.family} only)` : ` (${endpoint.family})`;
  if (endpoint.port !== undefined) return `${where} port ${endpoint.port}`;
  if (endpoint.portRange) return `${where} ports ${endpoint.portRange[0]}-${endpoint.portRange[1]}`;
  return where;
}

export function describeDuration(duration: RuleDuration, now: number = Date.now()): string {
  switch (duration.kind) {
    case 'once':
      return 'once';
    case 'always':
      return 'always';
    case 'process':
      return `while process ${shortToken(duration.token)} runs`;
    case 'until':
      return `${duration.until <= now ? 'expired' : 'until'} ${new Date(duration.until).toISOString().replace(/:\d\d\.\d{3}Z$/, 'Z')}`;
  }
}

export function shortToken(token: string): string {
  const hex = Buffer.from(token, 'base64').toString('hex');
  return hex.length > 12 ? `${hex.slice(0, 12)}…` : hex;
}

export function describeAction(rule: Pick<RuleSpec, 'action' | 'blockMode'>): string {
  return rule.action === 'block' && rule.blockMode === 'reject' ? 'reject' : rule.action;
}

/** One line for a person: "block curl (sha256 …) → *.example.com port 443 tcp outbound, always". */
export function describeRule(rule: RuleSpec, now: number = Date.now()): string {
  const parts = [describeAction(rule), describeIdentity(rule.identity), '→', describeEndpoint(rule.endpoint)];
  if (rule.protocol) parts.push(rule.protocol);
  if (rule.direction) parts.push(rule.direction);
  let line = `${parts.join(' ')}, ${describeDuration(rule.duration, now)}`;
  if (rule.priority) line += `, priority ${rule.priority}`;
  if (rule.session) line += ' (until restart)';
  if (rule.enabled === false) line += ' (disabled)';
  return line;
}
