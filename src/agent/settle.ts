// The decision for a flow the queue threads could not decide, as a pure function of the flow, its
// attribution, the rules and the policy: the agent looks the identity up first (asynchronously, off
// this function) and turns the answer into packet verdicts afterwards. The rules first (identity
// rules, `once` rules), then the policy switches; what neither decides waits for a person or the
// deadline, which applies the default action — or, when a switch already knows better than the
// default (block-unpackaged while the identity is still being verified), that switch's verdict.
import type { Attribution } from '../attribution/types.js';
import type { BlockMode, FlowRecord, Rule, Verdict } from '../protocol/messages.js';
import { flowFacts, type FlowFacts } from '../rules/matcher.js';
import { decideByPolicy, type Policy } from '../rules/policy.js';

export type Settlement =
  /** Decided now: answer the flow's packets. */
  | { kind: 'allow' | 'block'; verdict: Verdict }
  /** Nothing decides it: it waits for a client, or the deadline's default action. */
  | { kind: 'wait' }
  /** It waits as above, but the deadline applies this verdict instead of the default action. */
  | { kind: 'fallback'; verdict: Verdict };

export interface SettleRules {
  /** The rule that decides these facts, if any (the agent's rule book also counts the hit and uses up
   *  a `once` rule: called exactly once per settlement). */
  match(facts: FlowFacts): Pick<Rule, 'id' | 'action' | 'blockMode'> | undefined;
  /** The rules file's switches, with `defaultAction` already the stricter of --default and the file's. */
  policy: Policy;
  /** --block-mode: for blocks whose rule names no mode. */
  blockMode: BlockMode;
}

export function settle(flow: FlowRecord, attribution: Attribution | undefined, rules: SettleRules): Settlement {
  const rule = rules.match(flowFacts(flow, attribution));
  if (rule) {
    const verdict: Verdict = { action: rule.action, by: 'rule', ruleId: rule.id, ...(rule.action === 'block' ? { blockMode: rule.blockMode ?? rules.blockMode } : {}) };
    return { kind: rule.action, verdict };
  }
  const d = decideByPolicy(attribution, rules.policy);
  if (d.by === 'default') return { kind: 'wait' };
  const verdict: Verdict = { action: d.action, by: 'default', policy: d.by, reason: d.reason, ...(d.action === 'block' ? { blockMode: d.blockMode ?? rules.blockMode } : {}) };
  return d.immediate ? { kind: d.action, verdict } : { kind: 'fallback', verdict };
}

/** Whether settling the flow needs its attribution looked up first: the queue thread could not match
 *  an identity rule, some rule is keyed by identity, or a switch looks at who vouches for the code. */
export function wantsAttribution(needsIdentity: boolean, identityRules: boolean, policy: Pick<Policy, 'allowPackaged' | 'blockUnpackaged'>): boolean {
  return needsIdentity || identityRules || policy.allowPackaged || policy.blockUnpackaged;
}
