// The agent's side of the rules conversation (docs/protocol.md §5–6): answers rules-list, rule-add and
// rule-remove with the request's ref (the same handler every flowtop extension uses), adds the rules a
// remembered verdict makes, puts the rule list in each subscriber's snapshot, and sends hit counts to
// subscribers as `rule-changed` `updated`, at most once per rule per interval.
import type { ExtensionMessage, Rule, RuleChangedMessage, RuleSpec } from '../protocol/messages.js';
import type { RequestMessage, ServerClient } from '../protocol/server.js';
import { handleRuleRequest, isRuleRequest, rulesMessages, type RuleKeeper, type RuleReplies } from '../rules/requests.js';
import type { RuleBook } from './rule-book.js';

/** How often changed hit counts are sent (docs/protocol.md, `rule-changed`). */
export const HIT_UPDATE_INTERVAL_MS = 1000;

export interface RuleConversationOptions {
  rules: RuleBook;
  /** To every subscribed client (the server's broadcast). */
  broadcast: (msg: ExtensionMessage) => void;
  /** Whether any client is subscribed (no hit updates are prepared for nobody). */
  watched: () => boolean;
  /** After any change to the rule list: the queue threads must learn it. */
  changed: () => void;
  log: (line: string) => void;
  hitIntervalMs?: number;
}

export class RuleConversation {
  private readonly keeper: RuleKeeper;
  /** Each rule clients know of, with the hit count they last heard. */
  private readonly sent = new Map<string, { rule: Rule; hits: number }>();
  /** The rule list as of the last check for rules that left it. */
  private listSeen: readonly Rule[] | undefined;
  private timer?: NodeJS.Timeout;

  constructor(private readonly options: RuleConversationOptions) {
    const book = options.rules;
    this.keeper = { rules: () => book.list(), add: (spec) => book.add(spec), remove: (id) => book.remove(id) };
  }

  start(): void {
    this.timer = setInterval(() => this.sendHits(), this.options.hitIntervalMs ?? HIT_UPDATE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Handles a rule request; false when `msg` is not one. */
  handle(client: ServerClient, msg: RequestMessage): boolean {
    if (!isRuleRequest(msg)) return false;
    this.run(handleRuleRequest(this.keeper, msg, this.replies(client)));
    return true;
  }

  /** Adds the rule a remembered verdict makes; `rule-changed` carries the verdict's ref. */
  add(client: ServerClient, spec: RuleSpec, ref?: string): Promise<void> {
    return this.run(handleRuleRequest(this.keeper, { type: 'rule-add', rule: spec, ...(ref ? { ref } : {}) }, this.replies(client)));
  }

  /** The rule list for a new subscriber's snapshot (split across lines as needed). */
  snapshot(): ExtensionMessage[] {
    // Rules already known keep the count the earlier clients heard: they still get the update.
    for (const rule of this.options.rules.list()) if (!this.sent.has(rule.id)) this.sent.set(rule.id, { rule, hits: rule.hits });
    return rulesMessages(this.keeper);
  }

  /** Rules whose hit count moved since clients last heard: one `rule-changed` `updated` each; rules
   *  that left the list without a request (a `once` rule used up): `removed`. */
  sendHits(): void {
    if (!this.options.watched()) return;
    const list = this.options.rules.list();
    if (list !== this.listSeen) this.sendVanished(list);
    for (const rule of list) {
      const sent = this.sent.get(rule.id);
      if (sent === undefined) {
        this.sent.set(rule.id, { rule, hits: rule.hits });
        continue;
      }
      if (sent.hits === rule.hits) continue;
      sent.hits = rule.hits;
      sent.rule = rule;
      // A copy: the book's rule objects carry live counters.
      this.options.broadcast({ type: 'rule-changed', op: 'updated', rule: { ...rule } });
    }
  }

  /** The list is a new array after every change: rules clients know of that are no longer in it. */
  private sendVanished(list: readonly Rule[]): void {
    this.listSeen = list;
    const ids = new Set(list.map((r) => r.id));
    for (const [id, sent] of this.sent) {
      if (ids.has(id)) continue;
      this.sent.delete(id);
      this.options.broadcast({ type: 'rule-changed', op: 'removed', rule: { ...sent.rule } });
    }
  }

  /** A change made outside a request (the fleet's rules): told to every client, remembered as sent. */
  announce(change: RuleChangedMessage): void {
    if (change.op === 'removed') this.sent.delete(change.rule.id);
    else this.sent.set(change.rule.id, { rule: change.rule, hits: change.rule.hits });
    this.options.broadcast(change);
  }

  private replies(client: ServerClient): RuleReplies {
    return {
      send: (m) => void client.send(m),
      broadcast: (m) => {
        if (m.type === 'rule-changed') {
          if (m.op === 'removed') this.sent.delete(m.rule.id);
          else this.sent.set(m.rule.id, { rule: m.rule, hits: m.rule.hits });
        }
        this.options.broadcast(m);
        // Not just "the list as seen now": a rule that left it meanwhile without a request (its
        // process ended, its time passed) would never be announced, and clients would keep showing it.
        if (m.type === 'rule-changed') this.sendVanished(this.options.rules.list());
      },
      error: (code, message, ref) => void client.reply(code, message, ref),
      changed: () => this.options.changed(),
    };
  }

  /** A request runs asynchronously (the store writes its file): whatever it throws is logged, never
   *  left to end the process as an unhandled rejection. */
  private run(work: Promise<void>): Promise<void> {
    return work.catch((error: unknown) => this.options.log(`rule request failed: ${error instanceof Error ? error.message : String(error)}`));
  }
}
