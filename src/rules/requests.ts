// The extension side of the protocol's rule requests (docs/protocol.md, "rule-add", "rule-remove",
// "rules-list") over a RuleStore: what an agent with the `rules` capability answers. The replies carry
// the request's ref; a change is broadcast to every client as `rule-changed`.
import { UserError } from '../errors.js';
import { rulesSnapshot } from '../protocol/codec.js';
import { FLEET_ID_PREFIX, isFleetRuleId } from './fleet-layer.js';
import type { ErrorCode, ExtensionMessage, Rule, RuleAddMessage, RuleRemoveMessage, RuleSpec, RulesListMessage } from '../protocol/messages.js';

/** Where the rules are kept: a RuleStore, or the agent's rule book over one. */
export interface RuleKeeper {
  rules(): readonly Rule[];
  add(spec: RuleSpec, now: number): Promise<Rule>;
  remove(id: string): Promise<Rule | undefined>;
}

export type RuleRequest = RuleAddMessage | RuleRemoveMessage | RulesListMessage;

export interface RuleReplies {
  /** To the asking client only. */
  send(msg: ExtensionMessage): void;
  /** To every subscribed client. */
  broadcast(msg: ExtensionMessage): void;
  error(code: ErrorCode, message: string, ref?: string): void;
  /** After a rule was added or removed, before the change is broadcast (the agent tells its queue
   *  threads here). */
  changed?(): void;
}

export function isRuleRequest(msg: { type: string }): msg is RuleRequest {
  return msg.type === 'rule-add' || msg.type === 'rule-remove' || msg.type === 'rules-list';
}

/** The `rules` messages of a snapshot (after subscribe) or a rules-list answer. */
export function rulesMessages(store: RuleKeeper, ref?: string): ExtensionMessage[] {
  return rulesSnapshot(store.rules(), ref);
}

export async function handleRuleRequest(store: RuleKeeper, msg: RuleRequest, replies: RuleReplies, now: number = Date.now()): Promise<void> {
  const ref = msg.ref;
  try {
    switch (msg.type) {
      case 'rules-list':
        for (const m of rulesMessages(store, ref)) replies.send(m);
        return;
      case 'rule-add': {
        // The decoder checked the spec with the rule schema (protocol/schema.ts → rules/schema.ts).
        const rule = await store.add(msg.rule, now);
        replies.changed?.();
        replies.broadcast({ type: 'rule-changed', op: 'added', rule, ...(ref ? { ref } : {}) });
        return;
      }
      case 'rule-remove': {
        if (isFleetRuleId(msg.id) && store.rules().some((r) => r.id === msg.id)) {
          return replies.error('not-supported', `rule "${msg.id}" is a fleet rule: it lives in the fleet's NATS rules bucket under key "${msg.id.slice(FLEET_ID_PREFIX.length)}"; remove it there (flowtop rules rm --nats URL ${msg.id.slice(FLEET_ID_PREFIX.length)}), not on this host`, ref);
        }
        const rule = await store.remove(msg.id);
        if (!rule) return replies.error('unknown-rule', `no rule with id "${msg.id}"`, ref);
        replies.changed?.();
        replies.broadcast({ type: 'rule-changed', op: 'removed', rule, ...(ref ? { ref } : {}) });
        return;
      }
    }
  } catch (error) {
    // A failed write: the client is told why; the rules are unchanged.
    if (error instanceof UserError) return replies.error('internal', error.message, ref);
    replies.error('internal', `rules: ${error instanceof Error ? error.message : String(error)}`, ref);
  }
}
