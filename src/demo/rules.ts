// The demo extension's rules: kept in memory for the life of the demo and matched with the project's
// rule matcher (src/rules), so a rule decides a replayed flow exactly as it would a live one.
import type { Attribution } from '../attribution/types.js';
import type { FlowRecord, Rule, RuleIdentity, RuleSpec } from '../protocol/messages.js';
import { flowFacts, RuleSet, type FlowFacts } from '../rules/matcher.js';
import { createRule, identityFromKey } from '../rules/model.js';
import { rememberedRule, type RememberChoice } from '../rules/remember.js';

export type { FlowFacts };

/** What a flow is matched on: its responsible process (the app, for a helper acting for one). */
export interface FlowSubject {
  facts: FlowFacts;
  /** The verified code identity, when the attribution is secure and has one. */
  identity?: RuleIdentity;
}

export function flowSubject(record: FlowRecord, attributions: ReadonlyMap<string, Attribution>): FlowSubject {
  // "Safari via com.apple.WebKit.Networking" is Safari's decision: rules key on the app's token.
  const token = record.appToken ?? record.token;
  const attribution = token !== undefined ? attributions.get(token) : undefined;
  const facts = flowFacts({ ...record, ...(token !== undefined ? { token } : {}) }, attribution);
  const identity =
    attribution?.trust === 'secure' && attribution.identity !== undefined
      ? identityFromKey(attribution.identity, attribution.name ?? attribution.path)
      : undefined;
  return identity ? { facts, identity } : { facts };
}

export class DemoRuleBook {
  private readonly rules = new Map<string, Rule>();
  private compiled = new RuleSet([]);

  list(): Rule[] {
    return [...this.rules.values()];
  }

  add(spec: RuleSpec, now: number): Rule {
    const rule = createRule(spec, now);
    this.rules.set(rule.id, rule);
    this.compiled = new RuleSet(this.list());
    return rule;
  }

  remove(id: string): Rule | undefined {
    const rule = this.rules.get(id);
    if (!rule) return undefined;
    this.rules.delete(id);
    this.compiled = new RuleSet(this.list());
    return rule;
  }

  /** The rule that decides a flow (most specific; block over allow among equals), as it is now. */
  match(facts: FlowFacts, now: number): Rule | undefined {
    const found = this.compiled.match(facts, now);
    return found ? this.rules.get(found.id) : undefined;
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

/** The rule a verdict's "remember" leaves, or a sentence saying why none can be kept. Only a verified
 *  identity can carry an "always" rule: an insecure (PID-based) name could belong to anyone. */
export function rememberedRuleFor(choice: RememberChoice, subject: FlowSubject, now: number): RuleSpec | string {
  const { facts, identity } = subject;
  if (choice.remember === 'always' && !identity) {
    return facts.trust === 'insecure'
      ? 'its identity was not verified (insecure); remember "process" keeps a rule for this process instance'
      : 'its process could not be identified';
  }
  return rememberedRule(choice, {
    ...(facts.token !== undefined ? { token: facts.token } : {}),
    ...(identity ? { identity } : {}),
    protocol: facts.protocol,
    direction: facts.direction,
    remoteAddress: facts.remoteAddress,
    remotePort: facts.remotePort,
    ...(facts.remoteHost !== undefined ? { remoteHost: facts.remoteHost } : {}),
  }, now);
}
