import { describe, expect, it } from 'vitest';
import type { Rule, RuleSpec } from '../../src/protocol/messages.js';
import { flowFacts, matchRule, RuleSet, type FlowFacts } from '../../src/rules/matcher.js';
import { parseRuleSpec } from '../../src/rules/schema.js';

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);
const CURL = 'sha256:' + 'a'.repeat(64);
const WGET = 'sha256:' + 'b'.repeat(64);
const TOKEN = Buffer.from('process-instance-1').toString('base64');
const OTHER_TOKEN = Buffer.from('process-instance-2').toString('base64');

let serial = 0;
/** A rule from a spec written the way a person would (checked and normalised like any input). */
function rule(spec: Partial<RuleSpec> & { id?: string; action: RuleSpec['action'] }): Rule {
  const { id, ...rest } = spec;
  const checked = parseRuleSpec({ duration: { kind: 'always' }, ...rest });
  if (!checked.ok) throw new Error(checked.problems.join('\n'));
  return { ...checked.value, id: id ?? `r${++serial}`, created: NOW - 1000, hits: 0, enabled: checked.value.enabled ?? true };
}

const curl = { kind: 'sha256' as const, value: 'a'.repeat(64), label: 'curl' };
const curlPath = { kind: 'path' as const, value: '/usr/bin/curl' };
const curlPkg = { kind: 'package' as const, package: 'curl', value: '/usr/bin/curl' };

function facts(extra: Partial<FlowFacts> = {}): FlowFacts {
  return {
    trust: 'secure', identity: CURL, path: '/usr/bin/curl', token: TOKEN,
    protocol: 'tcp', direction: 'outbound', remoteAddress: '93.184.216.34', remotePort: 443, remoteHost: 'www.example.com',
    ...extra,
  };
}

function winner(rules: Rule[], f: FlowFacts = facts(), now = NOW): string | undefined {
  return matchRule(rules, f, now)?.id;
}

describe('specificity: most specific wins', () => {
  const rules = [
    rule({ id: 'global', action: 'block' }),
    rule({ id: 'endpoint', action: 'allow', endpoint: { domain: 'example.com' } }),
    rule({ id: 'process', action: 'block', identity: curl }),
    rule({ id: 'process+endpoint', action: 'allow', identity: curl, endpoint: { domain: 'example.com' } }),
    rule({ id: 'process+endpoint+port', action: 'block', identity: curl, endpoint: { domain: 'example.com', port: 443 } }),
  ];
  it.each([
    ['process + endpoint + port', rules, 'process+endpoint+port'],
    ['process + endpoint', rules.slice(0, 4), 'process+endpoint'],
    ['process only', rules.slice(0, 3), 'process'],
    ['endpoint only', rules.slice(0, 2), 'endpoint'],
    ['global', rules.slice(0, 1), 'global'],
  ])('%s', (_name, list, expected) => {
    expect(winner([...list].reverse())).toBe(expected);
    expect(winner(list)).toBe(expected);
  });

  it('the more precise remote wins: exact host over domain, longer domain over shorter, longer prefix over shorter', () => {
    expect(winner([rule({ id: 'dom', action: 'block', endpoint: { domain: 'example.com' } }), rule({ id: 'host', action: 'allow', endpoint: { host: 'www.example.com' } })])).toBe('host');
    expect(winner([rule({ id: 'short', action: 'block', endpoint: { domain: 'com' } }), rule({ id: 'long', action: 'allow', endpoint: { domain: 'example.com' } })])).toBe('long');
    expect(winner([rule({ id: '/8', action: 'block', endpoint: { cidr: '93.0.0.0/8' } }), rule({ id: '/24', action: 'allow', endpoint: { cidr: '93.184.216.0/24' } })])).toBe('/24');
    expect(winner([rule({ id: 'range', action: 'block', endpoint: { portRange: [1, 1024] } }), rule({ id: 'narrow', action: 'allow', endpoint: { portRange: [440, 450] } })])).toBe('narrow');
    expect(winner([rule({ id: 'range', action: 'block', endpoint: { portRange: [440, 450] } }), rule({ id: 'port', action: 'allow', endpoint: { port: 443 } })])).toBe('port');
  });

  it('a path-only identity is weaker than a hash or a package identity', () => {
    expect(winner([rule({ id: 'path', action: 'block', identity: curlPath }), rule({ id: 'hash', action: 'allow', identity: curl })])).toBe('hash');
    expect(winner([rule({ id: 'pkg', action: 'allow', identity: curlPkg }), rule({ id: 'path', action: 'block', identity: curlPath })], facts({ identity: 'package:curl:/usr/bin/curl' }))).toBe('pkg');
    // …but it still names a process, so it beats every endpoint-only rule.
    expect(winner([rule({ id: 'endpoint', action: 'block', endpoint: { host: 'www.example.com', port: 443 } }), rule({ id: 'path', action: 'allow', identity: curlPath })])).toBe('path');
  });

  it('a rule for this process instance (token) is the strongest process rule', () => {
    const rules = [rule({ id: 'hash', action: 'block', identity: curl }), rule({ id: 'token', action: 'allow', duration: { kind: 'process', token: TOKEN } })];
    expect(winner(rules)).toBe('token');
  });
});

describe('block beats allow at equal specificity', () => {
  it.each([
    ['global', {}],
    ['process', { identity: curl }],
    ['process + endpoint + port', { identity: curl, endpoint: { host: 'www.example.com', port: 443 } }],
  ])('%s', (_name, shape) => {
    const allow = rule({ id: 'allow', action: 'allow', ...shape });
    const block = rule({ id: 'block', action: 'block', blockMode: 'reject', ...shape });
    expect(winner([allow, block])).toBe('block');
    expect(winner([block, allow])).toBe('block');
  });
});

describe('skipped rules', () => {
  it('an expired rule is skipped, a live one applies, and expiry is checked against the given time', () => {
    const rules = [rule({ id: 'until', action: 'allow', identity: curl, duration: { kind: 'until', until: NOW + 60_000 } }), rule({ id: 'global', action: 'block' })];
    expect(winner(rules, facts(), NOW)).toBe('until');
    expect(winner(rules, facts(), NOW + 60_000)).toBe('global');
    expect(winner(rules, facts(), NOW + 120_000)).toBe('global');
  });

  it('a disabled rule is skipped', () => {
    expect(winner([rule({ id: 'off', action: 'block', identity: curl, enabled: false })])).toBeUndefined();
  });

  it('a once rule matches (RuleStore keeps it in memory and drops it at its first hit)', () => {
    expect(winner([rule({ id: 'once', action: 'block', duration: { kind: 'once' } })])).toBe('once');
  });
});

describe('process-lifetime rules are keyed by the token, not the PID', () => {
  const rules = [rule({ id: 'instance', action: 'block', duration: { kind: 'process', token: TOKEN } })];
  it('matches the same instance whatever its trust', () => {
    expect(winner(rules)).toBe('instance');
    expect(winner(rules, facts({ trust: 'insecure', identity: undefined }))).toBe('instance');
  });
  it('does not match another instance (a reused PID has another token)', () => {
    expect(winner(rules, facts({ token: OTHER_TOKEN }))).toBeUndefined();
    expect(winner(rules, facts({ token: undefined }))).toBeUndefined();
  });
  it('with an identity, it also needs that identity, verified', () => {
    const both = [rule({ id: 'both', action: 'allow', identity: curl, duration: { kind: 'process', token: TOKEN } })];
    expect(winner(both)).toBe('both');
    expect(winner(both, facts({ identity: WGET }))).toBeUndefined();
    expect(winner(both, facts({ trust: 'insecure' }))).toBeUndefined();
  });
});

describe('protocol and direction are matched', () => {
  it('protocol', () => {
    const rules = [rule({ id: 'udp', action: 'block', protocol: 'udp' })];
    expect(winner(rules, facts({ protocol: 'udp' }))).toBe('udp');
    expect(winner(rules, facts({ protocol: 'tcp' }))).toBeUndefined();
  });
  it('direction', () => {
    const rules = [rule({ id: 'in', action: 'block', direction: 'inbound', identity: curl })];
    expect(winner(rules, facts({ direction: 'inbound' }))).toBe('in');
    expect(winner(rules, facts({ direction: 'outbound' }))).toBeUndefined();
  });
  it('naming the protocol is more specific than not naming it', () => {
    expect(winner([rule({ id: 'any', action: 'block', identity: curl }), rule({ id: 'tcp', action: 'allow', identity: curl, protocol: 'tcp' })])).toBe('tcp');
  });
});

describe('addresses, CIDR blocks, ports, domains', () => {
  it.each([
    ['10.0.0.0/8', '10.200.3.4', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['192.168.1.128/25', '192.168.1.200', true],
    ['192.168.1.128/25', '192.168.1.100', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    ['0.0.0.0/0', '2001:db8::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8:0:8000::/49', '2001:db8:0:80ff::1', true],
    ['2001:db8:0:8000::/49', '2001:db8:0:7fff::1', false],
    ['10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['::/0', '::1', true],
  ])('cidr %s vs %s → %s', (cidr, address, expected) => {
    const rules = [rule({ id: 'c', action: 'block', endpoint: { cidr } })];
    expect(winner(rules, facts({ remoteAddress: address })) === 'c').toBe(expected);
  });

  it('exact address, in any spelling of the same address', () => {
    const rules = [rule({ id: 'a6', action: 'block', endpoint: { address: '2001:0DB8:0:0:0:0:0:1' } }), rule({ id: 'a4', action: 'block', endpoint: { address: '192.0.2.1' } })];
    expect(winner(rules, facts({ remoteAddress: '2001:db8::1' }))).toBe('a6');
    expect(winner(rules, facts({ remoteAddress: '2001:db8::2' }))).toBeUndefined();
    expect(winner(rules, facts({ remoteAddress: '::ffff:192.0.2.1' }))).toBe('a4');
    expect(winner(rules, facts({ remoteAddress: '192.0.2.10' }))).toBeUndefined();
  });

  it.each([[999, false], [1000, true], [1500, true], [2000, true], [2001, false]])('port range 1000-2000 vs %i → %s', (port, expected) => {
    const rules = [rule({ id: 'range', action: 'block', endpoint: { portRange: [1000, 2000] } })];
    expect(winner(rules, facts({ remotePort: port })) === 'range').toBe(expected);
  });

  it.each([
    ['example.com', true],
    ['a.example.com', true],
    ['a.b.example.com', true],
    ['WWW.Example.COM.', true],
    ['badexample.com', false],
    ['example.com.evil.net', false],
    ['com', false],
    [undefined, false],
  ])('domain example.com vs host %s → %s', (host, expected) => {
    const rules = [rule({ id: 'd', action: 'block', endpoint: { domain: 'example.com' } })];
    expect(winner(rules, facts({ remoteHost: host })) === 'd').toBe(expected);
  });

  it('a host rule matches only that exact name', () => {
    const rules = [rule({ id: 'h', action: 'block', endpoint: { host: 'example.com' } })];
    expect(winner(rules, facts({ remoteHost: 'example.com' }))).toBe('h');
    expect(winner(rules, facts({ remoteHost: 'www.example.com' }))).toBeUndefined();
  });
});

describe('unknown or unverified identity never matches an identity rule', () => {
  const rules = [
    rule({ id: 'hash', action: 'allow', identity: curl }),
    rule({ id: 'path', action: 'allow', identity: curlPath }),
    rule({ id: 'pkg', action: 'allow', identity: curlPkg }),
  ];
  it.each([
    ['insecure', facts({ trust: 'insecure' })],
    ['gone', facts({ trust: 'gone' })],
    ['pending', facts({ trust: 'pending' })],
    ['no attribution at all', facts({ trust: undefined })],
    ['secure but no identity or path', facts({ identity: undefined, path: undefined })],
    ['empty identity (OpenSnitch would call this a match)', facts({ identity: '', path: '' })],
  ])('%s', (_name, f) => {
    expect(winner(rules, f)).toBeUndefined();
  });

  it('flowFacts keeps identity and path only from a secure attribution', () => {
    const flow = {
      id: 'f1', time: NOW, direction: 'outbound' as const, protocol: 'tcp' as const, family: 'ipv4' as const,
      local: { address: '10.0.0.2', port: 40000 }, remote: { address: '93.184.216.34', port: 443 }, token: TOKEN,
    };
    expect(winner(rules, flowFacts(flow, { trust: 'insecure', identity: CURL, path: '/usr/bin/curl', pid: 42 }))).toBeUndefined();
    expect(winner(rules, flowFacts(flow, { trust: 'secure', identity: CURL, path: '/usr/bin/curl' }))).toBe('hash');
  });
});

describe('RuleSet and the list cache', () => {
  it('a RuleSet answers like the plain list, and a new list is recompiled', () => {
    const rules = [rule({ id: 'x', action: 'block', identity: curl })];
    expect(new RuleSet(rules).match(facts(), NOW)?.id).toBe('x');
    expect(winner(rules)).toBe('x');
    const more = [...rules, rule({ id: 'y', action: 'allow', identity: curl, endpoint: { port: 443 } })];
    expect(winner(more)).toBe('y');
  });
});

describe('priority ranks above specificity', () => {
  it('a higher priority wins over a more specific rule; equal priorities fall back to specificity', () => {
    const broad = rule({ id: 'deny-everyone', action: 'block', endpoint: { host: 'www.example.com' }, priority: 2 });
    const specific = rule({ id: 'allow-curl', action: 'allow', identity: curl, endpoint: { host: 'www.example.com', port: 443 }, priority: 1 });
    expect(winner([specific, broad])).toBe('deny-everyone');
    expect(winner([{ ...specific, priority: 2 }, broad])).toBe('allow-curl');
    // Without priorities the process rule is more specific and wins.
    expect(winner([{ ...specific, priority: undefined }, { ...broad, priority: undefined }])).toBe('allow-curl');
  });

  it('priority holds across buckets (token, identity, path, folder, global)', () => {
    const rules = [
      rule({ id: 'token', action: 'allow', duration: { kind: 'process', token: TOKEN } }),
      rule({ id: 'path', action: 'allow', identity: curlPath }),
      rule({ id: 'global', action: 'block', priority: 5 }),
    ];
    expect(winner(rules)).toBe('global');
  });
});

describe('address family', () => {
  const rules = [rule({ id: 'v4', action: 'block', protocol: 'udp', endpoint: { family: 'ipv4' } })];
  it('matches only remote addresses of its family; IPv4-mapped IPv6 is IPv4', () => {
    expect(winner(rules, facts({ protocol: 'udp', remoteAddress: '192.0.2.1' }))).toBe('v4');
    expect(winner(rules, facts({ protocol: 'udp', remoteAddress: '::ffff:192.0.2.1' }))).toBe('v4');
    expect(winner(rules, facts({ protocol: 'udp', remoteAddress: '2001:db8::1' }))).toBeUndefined();
  });
  it('a host name rule limited to IPv6 skips IPv4 connections to that host', () => {
    const v6 = [rule({ id: 'v6', action: 'allow', endpoint: { host: 'www.example.com', family: 'ipv6' } })];
    expect(winner(v6, facts({ remoteAddress: '2001:db8::80' }))).toBe('v6');
    expect(winner(v6)).toBeUndefined();
  });
  it('refuses a family that contradicts the address', () => {
    const checked = parseRuleSpec({ action: 'block', duration: { kind: 'always' }, endpoint: { cidr: '10.0.0.0/8', family: 'ipv6' } });
    expect(checked.ok ? '' : checked.problems.join()).toContain('could never match');
  });
});

describe('folder path identities', () => {
  const folder = rule({ id: 'utilities', action: 'block', identity: { kind: 'path', value: '/Applications/Utilities/' } });
  it('match every program under the folder, and the folder path itself, never a look-alike', () => {
    expect(winner([folder], facts({ path: '/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal' }))).toBe('utilities');
    expect(winner([folder], facts({ path: '/Applications/Utilities' }))).toBe('utilities');
    expect(winner([folder], facts({ path: '/Applications/UtilitiesX/tool' }))).toBeUndefined();
    expect(winner([folder], facts({ path: '/Applications/Utilities/x', trust: 'insecure' }))).toBeUndefined();
  });
  it('rank below an exact path for the same program', () => {
    const exact = rule({ id: 'terminal', action: 'allow', identity: { kind: 'path', value: '/Applications/Utilities/Terminal' } });
    expect(winner([folder, exact], facts({ path: '/Applications/Utilities/Terminal' }))).toBe('terminal');
  });
});
