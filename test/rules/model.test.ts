import { describe, expect, it } from 'vitest';
import { parseRulesDocument } from '../../src/rules/document.js';
import { formatIp, parseIp } from '../../src/rules/ip.js';
import { createRule, describeRule, identityFromKey, identityKey } from '../../src/rules/model.js';
import { parseRule, parseRuleSpec } from '../../src/rules/schema.js';
import { decideByPolicy, DEFAULT_POLICY } from '../../src/rules/policy.js';

const HASH = 'ab'.repeat(32);

describe('rule validation names the rule and the field', () => {
  it('normalises what it accepts', () => {
    const checked = parseRuleSpec({
      action: 'block', blockMode: 'reject', duration: { kind: 'always' },
      identity: { kind: 'sha256', value: `sha256:${HASH.toUpperCase()}` },
      endpoint: { cidr: '2001:DB8:0:0::/32', port: 443 },
    });
    expect(checked).toEqual({ ok: true, value: {
      action: 'block', blockMode: 'reject', duration: { kind: 'always' },
      identity: { kind: 'sha256', value: HASH }, endpoint: { cidr: '2001:db8::/32', port: 443 },
    } });
  });

  it.each([
    [{ action: 'permit', duration: { kind: 'always' } }, 'action: must be one of "allow", "block", got "permit"'],
    [{ action: 'allow' }, 'duration: must be an object, got nothing'],
    [{ action: 'allow', duration: { kind: 'until' } }, 'duration.until: must be a time'],
    [{ action: 'allow', duration: { kind: 'process', token: 'not base64!' } }, 'duration.token: must be the base64 token'],
    [{ action: 'allow', blockMode: 'reject', duration: { kind: 'always' } }, 'blockMode: is only for block rules'],
    [{ action: 'allow', duration: { kind: 'always' }, identity: { kind: 'sha256', value: 'abc' } }, 'identity.value: must be the 64 hex digits'],
    [{ action: 'allow', duration: { kind: 'always' }, identity: { kind: 'path', value: 'curl' } }, 'identity.value: must be an absolute executable path'],
    [{ action: 'allow', duration: { kind: 'always' }, identity: { kind: 'package', value: '/usr/bin/curl' } }, 'identity.package: must be a string'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { cidr: '10.0.0.1/8' } }, 'did you mean 10.0.0.0/8?'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { cidr: '10.0.0.0/33' } }, 'endpoint.cidr: is not an address/prefix'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { address: '300.1.1.1' } }, 'endpoint.address: is not an IPv4 or IPv6 address'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { domain: '*.example.com' } }, 'without "*."'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { host: 'a..b' } }, 'endpoint.host: is not a host name'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { host: 'a.com', cidr: '10.0.0.0/8' } }, 'at most one of host, domain, address, cidr'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { port: 70000 } }, 'endpoint.port: must be a whole number from 0 to 65535'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: { portRange: [2000, 1000] } }, 'low 2000 is above high 1000'],
    [{ action: 'allow', duration: { kind: 'always' }, endpoint: {} }, 'endpoint: is empty'],
    [{ action: 'allow', duration: { kind: 'always' }, protocol: 'icmp', endpoint: { port: 1 } }, 'protocol "icmp" has no ports'],
    [{ action: 'allow', duration: { kind: 'always' }, colour: 'red' }, 'rule colour: is not a known field'],
  ])('%j → %s', (input, message) => {
    const checked = parseRuleSpec(input);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.problems.join('\n')).toContain(message);
  });

  it('a document problem names the rule index, its id and the field', () => {
    const doc = { version: 1, rules: [
      { id: 'ok1', action: 'allow', duration: { kind: 'always' }, created: 1, hits: 0 },
      { id: 'bad', action: 'allow', duration: { kind: 'always' }, created: 1, hits: -1 },
      { id: 'ok1', action: 'allow', duration: { kind: 'always' }, created: 1, hits: 0 },
      { id: 'o', action: 'allow', duration: { kind: 'once' }, created: 1, hits: 0 },
    ] };
    const checked = parseRulesDocument(doc);
    expect(checked.ok).toBe(false);
    if (checked.ok) return;
    expect(checked.problems).toContain('rules[1] (id "bad") hits: must be a whole number from 0 to 9007199254740991, got -1');
    expect(checked.problems).toContain('rules[2] (id "ok1") id: "ok1" is also the id of rules[0]');
    expect(checked.problems).toContain('rules[3] (id "o") duration.kind: "once" applies to one flow and is never stored');
  });

  it('refuses a newer file version and unknown policy switches', () => {
    const newer = parseRulesDocument({ version: 2, rules: [] });
    expect(!newer.ok && newer.problems[0]).toContain('written by a newer flowtop');
    const policy = parseRulesDocument({ version: 1, policy: { blockUnsigned: true }, rules: [] });
    expect(!policy.ok && policy.problems[0]).toContain('policy.blockUnsigned: is not a known switch');
  });

  it('createRule stamps id, time and counters', () => {
    const spec = parseRuleSpec({ action: 'allow', duration: { kind: 'always' } });
    if (!spec.ok) throw new Error('spec');
    const rule = createRule(spec.value, 1234);
    expect(rule).toMatchObject({ action: 'allow', created: 1234, hits: 0, enabled: true });
    expect(rule.id).toMatch(/^r[0-9a-f]{12}$/);
    expect(parseRule(rule).ok).toBe(true);
  });

  it('identity keys round-trip with the attribution identity strings', () => {
    for (const key of [`sha256:${HASH}`, 'package:coreutils:/usr/bin/ls', 'identifier "com.example.app" and anchor apple generic']) {
      const identity = identityFromKey(key);
      expect(identity && identityKey(identity)).toBe(key);
    }
  });

  it('describes a rule for people', () => {
    const spec = parseRuleSpec({
      action: 'block', blockMode: 'reject', identity: { kind: 'package', package: 'curl', value: '/usr/bin/curl' },
      endpoint: { domain: 'example.com', portRange: [443, 444] }, protocol: 'tcp', duration: { kind: 'until', until: Date.UTC(2030, 0, 1) },
    });
    if (!spec.ok) throw new Error(spec.problems.join());
    expect(describeRule(spec.value, Date.UTC(2026, 0, 1))).toBe('reject /usr/bin/curl (package curl) → *.example.com ports 443-444 tcp, until 2030-01-01T00:00Z');
  });
});

describe('IP parsing', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
  ])('%s → %s', (input, canonical) => {
    const ip = parseIp(input);
    expect(ip && formatIp(ip)).toBe(canonical);
  });
  it.each(['1.2.3', '1.2.3.256', '01.2.3.4', '1::2::3', '12345::', ':::', '1:2:3:4:5:6:7:8:9', ''])('%s is refused', (input) => {
    expect(parseIp(input)).toBeUndefined();
  });
});

describe('policy switches decide when no rule matches', () => {
  const packaged = { trust: 'secure' as const, path: '/usr/bin/curl', signer: { kind: 'package' as const, label: 'package curl', package: 'curl' } };
  const unpackaged = { trust: 'secure' as const, path: '/tmp/x', signer: { kind: 'unpackaged' as const, label: 'no package' } };
  const insecure = { trust: 'insecure' as const, pid: 7, reason: { call: 'open /proc/PID/exe', errno: 'EACCES', message: 'permission denied' } };

  it('default action, with nothing switched on', () => {
    expect(decideByPolicy(packaged, DEFAULT_POLICY)).toMatchObject({ action: 'allow', by: 'default', immediate: false });
    expect(decideByPolicy(unpackaged, { ...DEFAULT_POLICY, defaultAction: 'block', blockMode: 'reject' })).toMatchObject({ action: 'block', blockMode: 'reject', by: 'default' });
  });
  it('allow packaged system code', () => {
    const d = decideByPolicy(packaged, { ...DEFAULT_POLICY, defaultAction: 'block', allowPackaged: true });
    expect(d).toMatchObject({ action: 'allow', by: 'allowPackaged', immediate: true });
    expect(d.reason).toContain('package curl');
  });
  it('block unpackaged code, and code whose identity cannot be verified', () => {
    const policy = { ...DEFAULT_POLICY, blockUnpackaged: true, allowPackaged: true };
    expect(decideByPolicy(unpackaged, policy)).toMatchObject({ action: 'block', by: 'blockUnpackaged', immediate: true });
    expect(decideByPolicy(unpackaged, policy).reason).toContain('no package vouches for it');
    expect(decideByPolicy(insecure, policy).reason).toContain('could not be verified (insecure: permission denied)');
    expect(decideByPolicy(undefined, policy)).toMatchObject({ action: 'block', by: 'blockUnpackaged' });
    expect(decideByPolicy({ trust: 'pending' }, policy)).toMatchObject({ action: 'block', immediate: false });
    expect(decideByPolicy(packaged, policy)).toMatchObject({ action: 'allow', by: 'allowPackaged' });
  });
  it('an insecure attribution never counts as packaged', () => {
    expect(decideByPolicy({ ...packaged, trust: 'insecure' }, { ...DEFAULT_POLICY, allowPackaged: true })).toMatchObject({ by: 'default' });
  });
});
