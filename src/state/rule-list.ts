// One extension's rules as the client knows them, changed in O(1) per `rule-changed` (a list copied
// or searched per change froze the TUI for minutes under 100,000 changes). Like the flow Map, it is
// updated in place by the reducer that owns it; `rev` tells readers it changed.
import type { Rule } from '../protocol/messages.js';

let lists = 0;

export class RuleList {
  /** Tells lists apart (for readers that cache by revision). */
  readonly serial = ++lists;
  /** Insertion order is the extension's order; an update keeps a rule's place. */
  private readonly byId = new Map<string, Rule>();
  /** Parts of a list that said `continues`, held until its last part (protocol §5 `rules`). */
  private partial: Rule[] | undefined;
  private array: readonly Rule[] | undefined;
  /** Bumped by every change. */
  rev = 0;
  /** Whether a complete list has arrived on this connection ("no rules" differs from "not told yet"). */
  known = false;

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Rule | undefined {
    return this.byId.get(id);
  }

  /** The rules in order; the same array until the next change. */
  list(): readonly Rule[] {
    return (this.array ??= [...this.byId.values()]);
  }

  /** A `rules` message: a part is held; the last part replaces the whole list. */
  receive(rules: readonly Rule[], continues: boolean): void {
    if (continues) {
      if (this.partial) for (const r of rules) this.partial.push(r);
      else this.partial = [...rules];
      return;
    }
    const all = this.partial ? [...this.partial, ...rules] : rules;
    this.partial = undefined;
    this.byId.clear();
    for (const r of all) this.byId.set(r.id, r);
    this.known = true;
    this.changed();
  }

  /** `rule-changed`: an update keeps the rule's place; an addition goes last. */
  apply(op: 'added' | 'updated' | 'removed', rule: Rule): void {
    if (op === 'removed') {
      if (!this.byId.delete(rule.id)) return;
    } else if (op === 'updated' && this.byId.has(rule.id)) {
      this.byId.set(rule.id, rule);
    } else {
      this.byId.delete(rule.id);
      this.byId.set(rule.id, rule);
    }
    this.changed();
  }

  /** A new connection: nothing is known until its snapshot. */
  reset(): void {
    this.byId.clear();
    this.partial = undefined;
    this.known = false;
    this.changed();
  }

  private changed(): void {
    this.array = undefined;
    this.rev++;
  }
}
