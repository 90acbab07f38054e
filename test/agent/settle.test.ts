// The decision for a flow the queue threads handed over (settle.ts), without root: the real matcher
// over real rules, the real policy switches, attributions as the Linux backend reports them.
import { describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import type { FlowRecord, Rule, RuleSpec } from '../../src/protocol/messages.js';
import { matchRule, type FlowFacts } from '../../src/rules/matcher.js';
import { createRule } from '../../src/rules/model.js';
import { DEFAULT_POLICY, type Policy } from '../../src/rules/policy.js';
import { settle, wantsAttribution, type SettleRules } from '../../src/agent/settle.js';

const HASH = 'a'.repeat(64);
const NOW = 1_000_000;

const flow: FlowRecord = {
  id: 'q1-x-1', time: NOW, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
  local: { address: '127.0.0.1', port: 40000 }, remote: { address: '127.0.0.1', port: 8443 }, token: 'dG9rZW4=', pid: 42,
};

const secure: Attribution = { trust: 'secure', pid: 42, path: '/usr/bin/curl', identity: `sha256:${HASH}`, signer: { kind: 'unpackaged', label: 'no package' } };
const packaged: Attribution = { ...secure, identity: 'package:curl:/usr/bin/curl', signer: { kind: 'package', label: 'package curl', package: 'curl' } };

function rulesOf(specs: RuleSpec[], policy: Partial<Policy> = {}): SettleRules & { calls: FlowFacts[] } {
  const rules: Rule[] = specs.map((s, i) => createRule(s, NOW, `r${i + 1}`));
  const calls: FlowFacts[] = [];
  return {
    calls,
    match: (facts) => {
      calls.push(facts);
      return matchRule(rules, facts, NOW);
    },
    policy: { ...DEFAULT_POLICY, ...policy },
    blockMode: 'reject',
  };
}

describe('settle', () => {
  it('a rule for the port decides at once, with its id; a block without a mode takes --block-mode', () => {
    expect(settle(flow, undefined, rulesOf([{ action: 'allow', endpoint: { port: 8443 }, duration: { kind: 'always' } }])))
      .toEqual({ kind: 'allow', verdict: { action: 'allow', by: 'rule', ruleId: 'r1' } });
    expect(settle(flow, undefined, rulesOf([{ action: 'block', endpoint: { port: 8443 }, duration: { kind: 'always' } }])))
      .toEqual({ kind: 'block', verdict: { action: 'block', by: 'rule', ruleId: 'r1', blockMode: 'reject' } });
    expect(settle(flow, undefined, rulesOf([{ action: 'block', blockMode: 'drop', endpoint: { port: 8443 }, duration: { kind: 'always' } }])))
      .toMatchObject({ kind: 'block', verdict: { blockMode: 'drop' } });
  });

  it('matches the rules once, with the flow and its attribution', () => {
    const rules = rulesOf([]);
    settle(flow, secure, rules);
    expect(rules.calls).toHaveLength(1);
    expect(rules.calls[0]).toMatchObject({ remotePort: 8443, protocol: 'tcp', trust: 'secure', identity: `sha256:${HASH}`, path: '/usr/bin/curl' });
  });

  it('an identity rule decides only for a secure identity', () => {
    const block = [{ action: 'block' as const, identity: { kind: 'sha256' as const, value: HASH }, duration: { kind: 'always' as const } }];
    expect(settle(flow, secure, rulesOf(block))).toMatchObject({ kind: 'block', verdict: { by: 'rule', ruleId: 'r1' } });
    // the same identity string, not verified for this process instance: never matches
    expect(settle(flow, { ...secure, trust: 'insecure' }, rulesOf(block))).toEqual({ kind: 'wait' });
    expect(settle(flow, { ...secure, trust: 'gone' }, rulesOf(block))).toEqual({ kind: 'wait' });
    expect(settle(flow, undefined, rulesOf(block))).toEqual({ kind: 'wait' });
  });

  it('a rule beats the policy switches', () => {
    const rules = rulesOf([{ action: 'allow', endpoint: { port: 8443 }, duration: { kind: 'always' } }], { blockUnpackaged: true });
    expect(settle(flow, secure, rules)).toMatchObject({ kind: 'allow', verdict: { by: 'rule' } });
  });

  it('allow-packaged allows verified package code at once, and nothing else', () => {
    const rules = rulesOf([], { allowPackaged: true });
    expect(settle(flow, packaged, rules)).toMatchObject({ kind: 'allow', verdict: { action: 'allow', by: 'default', policy: 'allowPackaged' } });
    expect(settle(flow, secure, rules)).toEqual({ kind: 'wait' });
    expect(settle(flow, { ...packaged, trust: 'insecure' }, rules)).toEqual({ kind: 'wait' });
  });

  it('block-unpackaged blocks unvouched or unverifiable code at once, and an identity still being verified at the deadline', () => {
    const rules = rulesOf([], { blockUnpackaged: true, blockMode: 'drop' });
    expect(settle(flow, secure, rules)).toMatchObject({ kind: 'block', verdict: { action: 'block', by: 'default', policy: 'blockUnpackaged', blockMode: 'drop' } });
    expect(settle(flow, { trust: 'insecure', reason: { call: 'open', message: 'EACCES' } }, rules)).toMatchObject({ kind: 'block', verdict: { policy: 'blockUnpackaged' } });
    expect(settle(flow, undefined, rules)).toMatchObject({ kind: 'block', verdict: { reason: expect.stringContaining('no process was found') } });
    const waiting = settle(flow, { trust: 'pending' }, rules);
    expect(waiting).toMatchObject({ kind: 'fallback', verdict: { action: 'block', policy: 'blockUnpackaged', blockMode: 'drop' } });
    expect(settle(flow, packaged, rules)).toEqual({ kind: 'wait' });
  });

  it('with no rule and no switch the flow waits, whatever the default action (the deadline applies it)', () => {
    expect(settle(flow, secure, rulesOf([]))).toEqual({ kind: 'wait' });
    expect(settle(flow, secure, rulesOf([], { defaultAction: 'block' }))).toEqual({ kind: 'wait' });
  });

  it('the attribution is looked up only when a rule or switch needs it', () => {
    expect(wantsAttribution(false, false, DEFAULT_POLICY)).toBe(false);
    expect(wantsAttribution(true, false, DEFAULT_POLICY)).toBe(true);
    expect(wantsAttribution(false, true, DEFAULT_POLICY)).toBe(true);
    expect(wantsAttribution(false, false, { ...DEFAULT_POLICY, allowPackaged: true })).toBe(true);
    expect(wantsAttribution(false, false, { ...DEFAULT_POLICY, blockUnpackaged: true })).toBe(true);
  });
});
