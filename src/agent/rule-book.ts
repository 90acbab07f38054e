// The rules the agent decides with: read synchronously on every flow, changed through the rules store
// (which writes the file atomically before a change becomes visible).
import type { Rule, RuleSpec } from '../protocol/messages.js';
import type { RuleStore } from '../rules/store.js';

export interface RuleBook {
  list(): Rule[];
  add(spec: RuleSpec): Promise<Rule>;
  remove(id: string): Promise<Rule | undefined>;
  /** Counts a rule's hits (the store writes them on its own timer, not per hit). */
  recordHits(id: string, count: number, now: number): void;
}

export function storeRuleBook(store: RuleStore): RuleBook {
  return {
    list: () => [...store.rules()],
    add: (spec) => store.add(spec),
    remove: (id) => store.remove(id),
    recordHits: (id, count, now) => {
      for (let i = 0; i < count; i++) store.recordHit(id, now);
    },
  };
}
