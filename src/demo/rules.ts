// The demo extension's rules: kept in memory for the life of the demo, matched against each new flow.
// Matching follows the protocol's rule model; what is unknown never matches (a rule naming an identity
// does not match a flow whose process could not be identified).
import { isIPv4, isIPv6 } from 'node:net';
import type { Attribution } from '../attribution/types.js';
import type { Action, Direction, Rule, RuleIdentity, RuleSpec, TransportProtocol } from '../protocol/messages.js';

/** What a rule can be matched against, gathered once per flow. */
export interface FlowFacts {
  /** The code identity of the responsible process, when it was determined. */
  identity?: RuleIdentity;
  /** The executable path, even when only the PID route gave it (for path rules). */
  path?: string;
  /** Base64 token of the responsible process (for rules that last while the process lives). */
  token?: string;
  remoteHost?: string;
  remoteAddress: string;
  remotePort: number;
  protocol: TransportProtocol;
  direction: Direction;
}

/** The rule identity of an attribution: "sha256:<hex>", "package:<name>:<path>" or a macOS requirement. */
export function ruleIdentityOf(attribution: Attribution | undefined): RuleIdentity | undefined {
  const identity = attribution?.identity;
  if (!attribution || attribution.trust === 'gone' || identity === undefined) return undefined;
  const label = attribution.name ?? attribution.path;
  const withLabel = (id: RuleIdentity): RuleIdentity => (label ? { ...id, label } : id);
  if (identity.startsWith('sha256:')) return withLabel({ kind: 'sha256', value: identity.slice('sha256:'.length) });
  const pkg = /^package:([^:]+):(.+)$/.exec(identity);
  if (pkg) return withLabel({ kind: 'package', package: pkg[1] as string, value: pkg[2] as string });
  return withLabel({ kind: 'requirement', value: identity });
}

export class DemoRuleBook {
  private readonly rules = new Map<string, Rule>();
  private nextId = 1;

  list(): Rule[] {
    return [...this.rules.values()];
  }

  add(spec: RuleSpec, now: number): Rule {
    const rule: Rule = { ...spec, id: `demo-${this.nextId++}`, created: now, hits: 0, enabled: spec.enabled ?? true };
    this.rules.set(rule.id, rule);
    return rule;
  }

  remove(id: string): Rule | undefined {
    const rule = this.rules.get(id);
    this.rules.delete(id);
    return rule;
  }

  /** The rule that decides a flow: a matching block rule wins over a matching allow rule. */
  match(facts: FlowFacts, now: number): Rule | undefined {
    let allow: Rule | undefined;
    for (const rule of this.rules.values()) {
      if (!ruleMatches(rule, facts, now)) continue;
      if (rule.action === 'block') return rule;
      allow ??= rule;
    }
    return allow;
  }

  /** Counts a hit; returns the updated rule. */
  hit(id: string, now: number): Rule | undefined {
    const rule = this.rules.get(id);
    if (!rule) return undefined;
    const updated: Rule = { ...rule, hits: rule.hits + 1, lastHit: now };
    this.rules.set(id, updated);
    return updated;
  }
}

export function ruleMatches(rule: Rule, facts: FlowFacts, now: number): boolean {
  if (!rule.enabled) return false;
  switch (rule.duration.kind) {
    case 'once': return false; // a once-verdict is never kept as a rule
    case 'until': if (now >= rule.duration.until) return false; break;
    case 'process': if (facts.token === undefined || facts.token !== rule.duration.token) return false; break;
    case 'always': break;
  }
  if (rule.protocol !== undefined && rule.protocol !== facts.protocol) return false;
  if (rule.direction !== undefined && rule.direction !== facts.direction) return false;
  if (rule.identity && !identityMatches(rule.identity, facts)) return false;
  const endpoint = rule.endpoint;
  if (endpoint) {
    const host = facts.remoteHost?.toLowerCase();
    if (endpoint.host !== undefined && host !== endpoint.host.toLowerCase()) return false;
    if (endpoint.domain !== undefined) {
      const domain = endpoint.domain.toLowerCase().replace(/^\./, '');
      if (host === undefined || (host !== domain && !host.endsWith(`.${domain}`))) return false;
    }
    if (endpoint.address !== undefined && endpoint.address !== facts.remoteAddress) return false;
    if (endpoint.cidr !== undefined && !inCidr(facts.remoteAddress, endpoint.cidr)) return false;
    if (endpoint.port !== undefined && endpoint.port !== facts.remotePort) return false;
    if (endpoint.portRange && (facts.remotePort < endpoint.portRange[0] || facts.remotePort > endpoint.portRange[1])) return false;
  }
  return true;
}

function identityMatches(wanted: RuleIdentity, facts: FlowFacts): boolean {
  if (wanted.kind === 'path') return facts.path !== undefined && facts.path === wanted.value;
  const have = facts.identity;
  if (!have || have.kind !== wanted.kind || have.value !== wanted.value) return false;
  return wanted.package === undefined || wanted.package === have.package;
}

/** IPv4 and IPv6 prefixes, compared bit by bit on the expanded address. */
function inCidr(address: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (base === undefined || !Number.isInteger(bits)) return false;
  const a = addressBits(address);
  const b = addressBits(base);
  if (a === undefined || b === undefined || a.length !== b.length || bits > a.length) return false;
  return a.slice(0, bits) === b.slice(0, bits);
}

function addressBits(address: string): string | undefined {
  if (isIPv4(address)) return address.split('.').map((part) => Number(part).toString(2).padStart(8, '0')).join('');
  if (!isIPv6(address)) return undefined;
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [p, q, r, s] = (v4[1] as string).split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -(v4[1] as string).length)}${((p << 8) | q).toString(16)}:${((r << 8) | s).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headParts.length - tailParts.length;
  const groups = tail === undefined ? headParts : [...headParts, ...Array<string>(missing).fill('0'), ...tailParts];
  return groups.map((group) => parseInt(group, 16).toString(2).padStart(16, '0')).join('');
}

/** The action a verdict's "remember" turns into, as a rule spec for the flow's identity; undefined
 *  when there is nothing to key it on. */
export function rememberedRule(
  action: Action,
  remember: 'process' | 'always',
  scope: 'process' | 'endpoint',
  facts: FlowFacts,
  blockMode?: Rule['blockMode'],
): RuleSpec | undefined {
  const identity: RuleIdentity | undefined =
    facts.identity ?? (facts.path !== undefined ? { kind: 'path', value: facts.path, label: `${facts.path} (path only)` } : undefined);
  if (remember === 'process' && facts.token === undefined) return undefined;
  if (remember === 'always' && identity === undefined) return undefined;
  const spec: RuleSpec = {
    action,
    duration: remember === 'process' ? { kind: 'process', token: facts.token as string } : { kind: 'always' },
    ...(identity ? { identity } : {}),
    ...(blockMode ? { blockMode } : {}),
  };
  if (scope === 'endpoint') {
    spec.endpoint = facts.remoteHost
      ? { host: facts.remoteHost, port: facts.remotePort }
      : { address: facts.remoteAddress, port: facts.remotePort };
    spec.protocol = facts.protocol;
  }
  return spec;
}
