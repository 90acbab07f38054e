// The indexed matcher against a plain reading of docs/rules.md ("Matching"), on many random rule sets
// and flows: a reference that checks every rule and compares priority, then specificity field by field.
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../src/protocol/messages.js';
import { cidrContains, parseCidr, parseIp } from '../../src/rules/ip.js';
import { RuleSet, type FlowFacts } from '../../src/rules/matcher.js';
import { createRule, identityKey } from '../../src/rules/model.js';
import { parseRuleSpec } from '../../src/rules/schema.js';

let seed = 7;
function rnd(n: number): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) % n;
}
function pick<T>(items: readonly T[]): T {
  return items[rnd(items.length)] as T;
}

const HASHES = ['a', 'b', 'c'].map((c) => c.repeat(64));
const PATHS = ['/usr/bin/curl', '/opt/x/bin/x'];
const FOLDERS = ['/usr/bin/', '/opt/x/', '/opt/x/bin/', '/usr/bin/curl/'];
const TOKENS = ['dG9rZW4x', 'dG9rZW4y'];
const HOSTS = ['example.com', 'www.example.com', 'a.b.example.com', 'badexample.com', 'example.org'];
const DOMAINS = ['example.com', 'b.example.com', 'com', 'example.org'];
const ADDRESSES = ['10.1.2.3', '10.1.9.9', '192.0.2.1', '2001:db8::1', '2001:db8:1::5', '::ffff:10.1.2.3'];
const CIDRS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '2001:db8::/32', '2001:db8::/48', '0.0.0.0/0'];
const NOW = 1_000_000;

function randomRule(i: number): Rule {
  const spec: Record<string, unknown> = { action: pick(['allow', 'block']), duration: { kind: 'always' } };
  const who = rnd(7);
  if (who === 1) spec['identity'] = { kind: 'sha256', value: pick(HASHES) };
  if (who === 2) spec['identity'] = { kind: 'path', value: pick(PATHS) };
  if (who === 3) spec['identity'] = { kind: 'package', package: 'curl', value: '/usr/bin/curl' };
  if (who === 4) spec['duration'] = { kind: 'process', token: pick(TOKENS) };
  if (who === 5) Object.assign(spec, { identity: { kind: 'sha256', value: pick(HASHES) }, duration: { kind: 'process', token: pick(TOKENS) } });
  if (who === 6) spec['identity'] = { kind: 'path', value: pick(FOLDERS) };
  const endpoint: Record<string, unknown> = {};
  const remote = rnd(5);
  if (remote === 1) endpoint['host'] = pick(HOSTS);
  if (remote === 2) endpoint['domain'] = pick(DOMAINS);
  if (remote === 3) endpoint['address'] = pick(ADDRESSES);
  if (remote === 4) endpoint['cidr'] = pick(CIDRS);
  const port = rnd(4);
  if (port === 1) endpoint['port'] = pick([53, 443]);
  if (port === 2) endpoint['portRange'] = pick([[1, 1024], [400, 500], [443, 444]]);
  if (remote !== 3 && remote !== 4 && rnd(5) === 0) endpoint['family'] = pick(['ipv4', 'ipv6']);
  if (Object.keys(endpoint).length) spec['endpoint'] = endpoint;
  if (rnd(5) === 0) spec['priority'] = pick([1, 2, 7]);
  if (rnd(3) === 0) spec['protocol'] = pick(['tcp', 'udp']);
  if (rnd(4) === 0) spec['direction'] = pick(['outbound', 'inbound']);
  if (rnd(6) === 0) spec['duration'] = { kind: 'until', until: pick([NOW - 1, NOW, NOW + 1]) };
  if (rnd(10) === 0) spec['enabled'] = false;
  const checked = parseRuleSpec(spec);
  if (!checked.ok) throw new Error(checked.problems.join('\n'));
  return createRule(checked.value, 0, `r${i}`);
}

function randomFacts(): FlowFacts {
  const f: FlowFacts = {
    protocol: pick(['tcp', 'udp']), direction: pick(['outbound', 'inbound']),
    remoteAddress: pick(ADDRESSES), remotePort: pick([53, 443, 444, 1000, 5000]),
    trust: pick(['secure', 'secure', 'insecure', 'gone', 'pending', undefined] as const),
  };
  if (rnd(3)) f.identity = pick([...HASHES.map((h) => `sha256:${h}`), 'package:curl:/usr/bin/curl']);
  if (rnd(2)) f.path = pick(PATHS);
  if (rnd(2)) f.token = pick([...TOKENS, 'b3RoZXI=']);
  if (rnd(3)) f.remoteHost = pick(HOSTS);
  return f;
}

/** docs/rules.md, read literally. */
function referenceMatches(rule: Rule, f: FlowFacts): boolean {
  if (!rule.enabled) return false;
  if (rule.duration.kind === 'until' && rule.duration.until <= NOW) return false;
  if (rule.duration.kind === 'process' && rule.duration.token !== f.token) return false;
  const id = rule.identity;
  if (id) {
    if (f.trust !== 'secure') return false;
    const folder = id.kind === 'path' && id.value.endsWith('/');
    if (folder ? !(f.path?.startsWith(id.value) || f.path === id.value.slice(0, -1)) : id.kind === 'path' ? f.path !== id.value : f.identity !== identityKey(id)) return false;
  }
  const ep = rule.endpoint ?? {};
  const ip = parseIp(f.remoteAddress);
  if (ep.host && f.remoteHost !== ep.host) return false;
  if (ep.domain && !(f.remoteHost === ep.domain || f.remoteHost?.endsWith(`.${ep.domain}`))) return false;
  if (ep.address && !(ip && parseIp(ep.address) && JSON.stringify(parseIp(ep.address)) === JSON.stringify(ip))) return false;
  if (ep.cidr && !(ip && cidrContains(parseCidr(ep.cidr)!.cidr, ip))) return false;
  if (ep.family && (!ip || `ipv${ip.family}` !== ep.family)) return false;
  if (ep.port !== undefined && f.remotePort !== ep.port) return false;
  if (ep.portRange && (f.remotePort < ep.portRange[0] || f.remotePort > ep.portRange[1])) return false;
  if (rule.protocol && rule.protocol !== f.protocol) return false;
  if (rule.direction && rule.direction !== f.direction) return false;
  return true;
}

/** The specificity fields in order; compared lexicographically. */
function referenceKey(rule: Rule): number[] {
  const id = rule.identity;
  const ep = rule.endpoint ?? {};
  const token = rule.duration.kind === 'process';
  const remote = Boolean(ep.host || ep.domain || ep.address || ep.cidr);
  return [
    rule.priority ?? 0,
    id || token ? 1 : 0,
    remote ? 1 : 0,
    ep.port !== undefined || ep.portRange ? 1 : 0,
    token ? 4 : !id ? 0 : id.kind !== 'path' ? 3 : id.value.endsWith('/') ? 1 : 2,
    ep.host || ep.address ? 3 : ep.domain ? 2 : ep.cidr ? 1 : 0,
    ep.domain ? ep.domain.split('.').length : ep.cidr ? Number(ep.cidr.split('/')[1]) : 0,
    ep.port !== undefined ? 65536 : ep.portRange ? 65536 - (ep.portRange[1] - ep.portRange[0]) : 0,
    rule.protocol ? 1 : 0,
    ep.family ? 1 : 0,
    rule.direction ? 1 : 0,
    rule.action === 'block' ? 1 : 0,
  ];
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return 0;
}

describe('the indexed matcher agrees with a literal reading of the documented rules', () => {
  it('on 300 random rule sets × 200 random flows', () => {
    let decided = 0;
    for (let round = 0; round < 300; round++) {
      const rules = Array.from({ length: 1 + rnd(40) }, (_, i) => randomRule(i));
      const set = new RuleSet(rules);
      for (let k = 0; k < 200; k++) {
        const f = randomFacts();
        const got = set.match(f, NOW);
        const candidates = rules.filter((r) => referenceMatches(r, f));
        if (candidates.length === 0) {
          expect(got, JSON.stringify({ f, got })).toBeUndefined();
          continue;
        }
        decided++;
        const best = candidates.reduce((a, b) => (compareKeys(referenceKey(b), referenceKey(a)) > 0 ? b : a));
        expect(got, JSON.stringify({ f, best, got })).toBeDefined();
        // The same rule, or one exactly as specific with the same action.
        expect(compareKeys(referenceKey(got as Rule), referenceKey(best)), JSON.stringify({ f, best, got })).toBe(0);
      }
    }
    expect(decided).toBeGreaterThan(10_000); // the random mix really exercises matching
  });
});
