// Fleet, host and local rules together (docs/rules.md, "Fleet rules"): each layer picks its best rule
// as usual, and a block from any layer wins; with no block, this host's fleet rule, then the fleet's,
// then the local one. A bucket entry becomes a rule only if the rule schema accepts it.
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../src/protocol/messages.js';
import { RuleSet } from '../../src/rules/matcher.js';
import { fleetRuleFrom } from '../../src/fleet/fleet-rules.js';

const rule = (id: string, action: 'allow' | 'block', port?: number): Rule => ({
  id, action, created: 0, hits: 0, enabled: true, duration: { kind: 'always' }, ...(port ? { endpoint: { port } } : {}),
});
const facts = { protocol: 'tcp' as const, direction: 'outbound' as const, remoteAddress: '192.0.2.7', remotePort: 443 };

describe('fleet rule layers', () => {
  it('a local allow, however specific, does not undo a fleet block', () => {
    const set = new RuleSet([rule('local-allow', 'allow', 443), rule('fleet:all.no-web', 'block')]);
    expect(set.match(facts, 0)?.id).toBe('fleet:all.no-web');
  });

  it('a fleet allow does not undo a local block', () => {
    const set = new RuleSet([rule('local-block', 'block'), rule('fleet:all.web', 'allow', 443), rule('fleet:host.h1.web', 'allow', 443)]);
    expect(set.match(facts, 0)?.id).toBe('local-block');
  });

  it('with no block, this host\'s fleet rule comes first, then the fleet\'s, then the local one', () => {
    expect(new RuleSet([rule('local', 'allow', 443), rule('fleet:all.a', 'allow'), rule('fleet:host.h1.b', 'allow')]).match(facts, 0)?.id).toBe('fleet:host.h1.b');
    expect(new RuleSet([rule('local', 'allow', 443), rule('fleet:all.a', 'allow')]).match(facts, 0)?.id).toBe('fleet:all.a');
    expect(new RuleSet([rule('local', 'allow', 443)]).match(facts, 0)?.id).toBe('local');
  });

  it('reads a bucket entry with the rule schema; bad entries are refused with the reason', () => {
    const ok = fleetRuleFrom('all.no-web', JSON.stringify({ action: 'block', endpoint: { port: 443 }, duration: { kind: 'always' } }), 'h1');
    expect(ok).toMatchObject({ id: 'fleet:all.no-web', action: 'block', hits: 0 });
    expect(fleetRuleFrom('host.h2.x', '{"action":"block","duration":{"kind":"always"}}', 'h1')).toMatch(/for host h2/);
    expect(fleetRuleFrom('all.x', 'not json', 'h1')).toMatch(/not JSON/);
    expect(fleetRuleFrom('all.x', '{"action":"maybe","duration":{"kind":"always"}}', 'h1')).toMatch(/action/);
    expect(fleetRuleFrom('all.x', '{"action":"block","duration":{"kind":"once"}}', 'h1')).toMatch(/cannot last "once"/);
    expect(fleetRuleFrom('other.x', '{}', 'h1')).toMatch(/neither/);
  });
});
