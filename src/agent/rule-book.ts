// The rules the agent decides with, changed through the rules store (which writes the file atomically
// before a change becomes visible), and the policy switches for flows no rule matches.
import type { Rule, RuleSpec } from '../protocol/messages.js';
import type { FlowFacts } from '../rules/matcher.js';
import type { Policy } from '../rules/policy.js';
import type { RuleStore } from '../rules/store.js';

export interface RuleBook {
  list(): readonly Rule[];
  /** The rule that decides these facts; counts its hit and uses up a `once` rule. */
  match(facts: FlowFacts, now: number): Rule | undefined;
  policy(): Policy;
  add(spec: RuleSpec): Promise<Rule>;
  remove(id: string): Promise<Rule | undefined>;
  /** Counts hits of rules matched elsewhere (the queue worker); the store writes them on its own timer. */
  recordHits(id: string, count: number, now: number): void;
}

export function storeRuleBook(store: RuleStore): RuleBook {
  return {
    list: () => store.rules(),
    match: (facts, now) => store.match(facts, now),
    policy: () => store.policy(),
    add: (spec) => store.add(spec),
    remove: (id) => store.remove(id),
    recordHits: (id, count, now) => store.recordHit(id, now, count),
  };
}
