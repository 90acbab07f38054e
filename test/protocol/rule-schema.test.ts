// One rule schema: a rule sent in a rule-add (the protocol decoder), written in a rules file, or
// given to `flowtop rules add` (parseRuleSpec) is accepted or refused alike, with the same words.
import { describe, expect, test } from 'vitest';
import { ruleIdentity } from '../../src/app/decide.js';
import type { Attribution } from '../../src/attribution/types.js';
import { decodeClientMessage, decodeExtensionMessage } from '../../src/protocol/codec.js';
import { parseRulesDocument } from '../../src/rules/document.js';
import { identityFromKey, identityKey } from '../../src/rules/model.js';
import { parseRuleSpec } from '../../src/rules/schema.js';
import { linuxToken } from './samples.js';

const HASH = 'ab'.repeat(32);
const always = { kind: 'always' };

// Each of these was accepted by the protocol decoder and refused by the rules file (or the reverse)
// while the two checked rules separately.
const specs: [string, Record<string, unknown>][] = [
  ['host and domain together', { action: 'block', duration: always, endpoint: { host: 'a.example', domain: 'example.com' } }],
  ['host bits after the prefix', { action: 'block', duration: always, endpoint: { cidr: '10.0.0.1/8' } }],
  ['a package identity without its package', { action: 'allow', duration: always, identity: { kind: 'package', value: '/usr/bin/curl' } }],
  ['a relative path identity', { action: 'allow', duration: always, identity: { kind: 'path', value: 'curl' } }],
  ['a hash that is not one', { action: 'allow', duration: always, identity: { kind: 'sha256', value: 'xyz' } }],
  ['a package on a hash identity', { action: 'allow', duration: always, identity: { kind: 'sha256', value: HASH, package: 'curl' } }],
  ['blockMode on an allow rule', { action: 'allow', blockMode: 'reject', duration: always }],
  ['a port for icmp', { action: 'block', duration: always, protocol: 'icmp', endpoint: { port: 80 } }],
  ['port and portRange together', { action: 'block', duration: always, endpoint: { port: 80, portRange: [1, 2] } }],
  ['a host name with a space', { action: 'block', duration: always, endpoint: { host: 'exa mple.com' } }],
  ['an empty endpoint', { action: 'block', duration: always, endpoint: {} }],
  ['a token without its padding', { action: 'allow', duration: { kind: 'process', token: 'abc' } }],
  ['a token too long for the protocol', { action: 'allow', duration: { kind: 'process', token: 'A'.repeat(200) } }],
  ['an unknown action', { action: 'permit', duration: always }],
  ['a priority out of range', { action: 'allow', duration: always, priority: 1_000_000_001 }],
  ['a family its address is not', { action: 'block', duration: always, endpoint: { address: '10.1.2.3', family: 'ipv6' } }],
  // Accepted everywhere, and normalised the same way.
  ['a good rule', { action: 'block', blockMode: 'reject', duration: always, identity: { kind: 'sha256', value: `sha256:${HASH.toUpperCase()}` }, endpoint: { host: 'Example.COM.', port: 443 }, protocol: 'tcp' }],
  ['a process rule', { action: 'allow', duration: { kind: 'process', token: linuxToken }, endpoint: { cidr: '2001:DB8::/32', portRange: [1000, 1000] } }],
  ['a package with a colon in its name', { action: 'allow', duration: always, identity: { kind: 'package', package: 'libc-bin:amd64', value: '/usr/bin/getent' } }],
];

function overTheWire(spec: object): { ok: true; value: unknown } | { ok: false; problems: string } {
  const decoded = decodeClientMessage(JSON.stringify({ type: 'rule-add', rule: spec }));
  if (decoded.ok) return { ok: true, value: decoded.message.type === 'rule-add' ? decoded.message.rule : undefined };
  return { ok: false, problems: decoded.error.message.replace(/^rule-add message: /, '') };
}

function inAFile(spec: object): { ok: true; value: unknown } | { ok: false; problems: string } {
  const doc = parseRulesDocument({ version: 1, rules: [{ id: 'r1', created: 1, hits: 0, ...spec }] });
  if (!doc.ok) return { ok: false, problems: doc.problems.join('; ').replaceAll('rules[0] (id "r1")', 'rule') };
  const { id: _id, created: _created, hits: _hits, enabled: _enabled, ...value } = doc.value.rules[0]!;
  return { ok: true, value };
}

function fromTheCommandLine(spec: object): { ok: true; value: unknown } | { ok: false; problems: string } {
  const checked = parseRuleSpec(spec, 'rule');
  return checked.ok ? checked : { ok: false, problems: checked.problems.join('; ') };
}

describe('a rule is accepted or refused alike on every path, with the same words', () => {
  test.each(specs)('%s', (_name, spec) => {
    const wire = overTheWire(spec);
    expect(inAFile(spec)).toEqual(wire);
    expect(fromTheCommandLine(spec)).toEqual(wire);
  });

  test('the refusals say what was wrong, in the rules words', () => {
    expect(overTheWire(specs[0]![1])).toEqual({ ok: false, problems: 'rule endpoint: has host and domain: a rule names at most one of host, domain, address, cidr' });
    expect(overTheWire(specs[1]![1])).toEqual({ ok: false, problems: 'rule endpoint.cidr: "10.0.0.1/8" has bits set after the /8 prefix (did you mean 10.0.0.0/8?)' });
  });

  test('the good rules come out normalised the same way', () => {
    expect(overTheWire(specs.at(-3)![1])).toEqual({ ok: true, value: {
      action: 'block', blockMode: 'reject', duration: always, identity: { kind: 'sha256', value: HASH }, endpoint: { host: 'example.com', port: 443 }, protocol: 'tcp',
    } });
    expect(overTheWire(specs.at(-2)![1])).toEqual({ ok: true, value: { action: 'allow', duration: { kind: 'process', token: linuxToken }, endpoint: { cidr: '2001:db8::/32', port: 1000 } } });
  });

  test('rules an extension sends are read by the same schema', () => {
    const bad = { id: 'r1', created: 1, hits: 0, action: 'block', duration: always, endpoint: { host: 'a.example', domain: 'example.com' } };
    const decoded = decodeExtensionMessage(JSON.stringify({ type: 'rule-changed', op: 'added', rule: bad }));
    expect(decoded).toEqual({ ok: false, error: { code: 'bad-message', message: 'rule-changed message: rule endpoint: has host and domain: a rule names at most one of host, domain, address, cidr' } });
    const listed = decodeExtensionMessage(JSON.stringify({ type: 'rules', rules: [{ ...bad, endpoint: { host: 'EXAMPLE.com' } }] }));
    expect(listed).toMatchObject({ ok: true, message: { rules: [{ endpoint: { host: 'example.com' } }] } });
  });

  test('the protocol ignores fields it does not know; a rules file refuses them; null is absent on both', () => {
    const spec = { action: 'allow', duration: always, blockMode: null, schedule: 'weekdays' };
    expect(overTheWire(spec)).toEqual({ ok: true, value: { action: 'allow', duration: always } });
    expect(inAFile(spec)).toMatchObject({ ok: false, problems: expect.stringContaining('rule schedule: is not a known field') });
    expect(inAFile({ action: 'allow', duration: always, blockMode: null })).toEqual({ ok: true, value: { action: 'allow', duration: always } });
  });
});

describe('an identity key is read one way by the agent and the client', () => {
  // dpkg names a package of another architecture "name:arch": its key holds a colon before the path.
  const key = 'package:libc-bin:amd64:/usr/bin/getent';
  const attribution: Attribution = { trust: 'secure', identity: key, name: 'getent', pid: 1 };

  test('a package name holding a colon keeps it, and the rule the client asks for is a valid one', () => {
    const fromClient = ruleIdentity(attribution);
    expect(fromClient).toEqual({ kind: 'package', package: 'libc-bin:amd64', value: '/usr/bin/getent', label: 'getent' });
    expect(fromClient).toEqual(identityFromKey(key, 'getent'));
    expect(identityKey(fromClient!)).toBe(key);
    expect(overTheWire({ action: 'allow', duration: always, identity: fromClient })).toMatchObject({ ok: true });
  });
});
