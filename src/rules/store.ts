// RuleStore: the rules file (docs/rules.md, "File"). One process owns it (the agent while it runs,
// otherwise `flowtop rules`); every change is written atomically before it becomes visible, and hit
// counters are flushed on a timer instead of rewriting the file on every hit.
import { constants, type Stats } from 'node:fs';
import { open, readlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { Rule, RuleSpec } from '../protocol/messages.js';
import { removeStaleTemps, writeFileAtomic } from './atomic-file.js';
import { lockRulesFile, type FileLock } from './file-lock.js';
import { emptyDocument, parseRulesDocument, serializeRulesDocument, type RulesDocument } from './document.js';
import { RuleSet, type FlowFacts } from './matcher.js';
import { createRule, newRuleId, ruleContentKey } from './model.js';
import { isFleetRuleId } from './fleet-layer.js';
import { parseRule, parseRuleSpec } from './schema.js';
import type { Policy } from './policy.js';

export const DEFAULT_RULES_PATH = '/etc/flowtop/rules.json';

export interface RuleStoreOptions {
  /** How long hit counters may stay unwritten (ms). Default 10 s. */
  hitFlushMs?: number;
  /** Called between the synced temp file and the rename: lets tests kill a writer at that point. */
  beforeRename?: (tempPath: string) => void;
  /** Told when a timed flush of hit counters fails (the counters are kept and retried). */
  onFlushError?: (error: Error) => void;
  /** 'agent': this store owns the file until close (others are refused while it runs). Otherwise
   *  each change locks the file, re-reads it and applies the change to what is there now. */
  owner?: 'agent';
}

export type ImportOutcome =
  | { rule: Rule; result: 'added' }
  | { rule: Rule; result: 'duplicate'; existing: string };

/** Reads and checks a rules file. A missing file is an empty rule list; anything unreadable or invalid
 *  is a UserError naming the problem (and the file is never touched). A symbolic link is refused, not
 *  followed: every change renames a new file over the name, which would replace the link with a plain
 *  file and leave its target behind. Anything but a regular file (a FIFO would block the read forever)
 *  is refused too. */
export async function readRulesFile(path: string): Promise<{ document: RulesDocument; exists: boolean }> {
  let text: string;
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new UserError(`the rules file ${path} is not a regular file (it is ${kindOf(st)}): refusing it`, 'pass --rules with the path of a regular file');
    }
    text = await handle.readFile('utf8');
  } catch (error) {
    if (error instanceof UserError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { document: emptyDocument(), exists: false };
    if (code === 'ELOOP') {
      const target = await readlink(path).catch(() => undefined);
      throw new UserError(
        `the rules file ${path} is a symbolic link${target ? ` to ${target}` : ''}: refusing it (flowtop writes rules by renaming a new file over the name, which would replace the link)`,
        `pass the file itself: --rules ${target ? resolve(dirname(path), target) : 'PATH'}`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UserError(`cannot read the rules file ${path}: permission denied`, 'run it as root (sudo), or pass --rules PATH for a file you can read');
    }
    throw new UserError(`cannot read the rules file ${path}: ${(error as Error).message}`, 'check the path, or pass --rules PATH');
  } finally {
    await handle?.close();
  }
  const untouched = `The file was left untouched. Fix it (docs/rules.md describes the format), or move it aside to start with no rules: mv ${path} ${path}.bad`;
  if (text.trim() === '') throw new UserError(`the rules file ${path} is empty (expected {"version": 1, "policy": {...}, "rules": [...]})`, untouched);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`the rules file ${path} is not valid JSON: ${(error as Error).message}`, untouched);
  }
  const checked = parseRulesDocument(value);
  if (!checked.ok) {
    throw new UserError(`the rules file ${path} is invalid:\n  - ${checked.problems.join('\n  - ')}`, untouched);
  }
  return { document: checked.value, exists: true };
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

export class RuleStore {
  private doc: RulesDocument;
  /** Rules held in memory only, never written: `once` rules (each removed at its first hit) and
   *  session rules (kept until this process ends: "until restart"). */
  private memory: Rule[] = [];
  /** The fleet's rules for this host (docs/rules.md, "Fleet rules"): kept by the fleet, never written
   *  to this file, never removed through it. */
  private fleet: Rule[] = [];
  private all: Rule[];
  private set: RuleSet;
  private queue: Promise<unknown> = Promise.resolve();
  private hitTimer: NodeJS.Timeout | undefined;
  private hitsDirty = false;
  private cleaned = false;
  private closed = false;

  private constructor(readonly path: string, document: RulesDocument, private readonly options: RuleStoreOptions, private ownerLock?: FileLock) {
    this.doc = document;
    this.all = document.rules;
    this.set = new RuleSet(this.all);
  }

  private rebuild(): void {
    this.all = this.memory.length > 0 || this.fleet.length > 0 ? [...this.doc.rules, ...this.memory, ...this.fleet] : this.doc.rules;
    this.set = new RuleSet(this.all);
  }

  /** Loads the file (a missing file is an empty list; it is created on the first change). */
  static async open(path: string = DEFAULT_RULES_PATH, options: RuleStoreOptions = {}): Promise<RuleStore> {
    const lock = options.owner === 'agent' ? await lockRulesFile(path, 'agent') : undefined;
    try {
      const { document } = await readRulesFile(path);
      return new RuleStore(path, document, options, lock);
    } catch (error) {
      lock?.release();
      throw error;
    }
  }

  /** All rules, in file order, then the in-memory (`once` and session) rules. A new array after every change; rule
   *  objects carry live hit counters. */
  rules(): readonly Rule[] {
    return this.all;
  }

  /** The compiled rules for matching; replaced after every change. */
  ruleSet(): RuleSet {
    return this.set;
  }

  policy(): Policy {
    return this.doc.policy;
  }

  document(): RulesDocument {
    return { version: this.doc.version, policy: { ...this.doc.policy }, rules: this.doc.rules.map((r) => ({ ...r })) };
  }

  get(id: string): Rule | undefined {
    return this.all.find((r) => r.id === id);
  }

  /** The rule that decides a flow; counts the hit (a `once` rule is used up). */
  match(facts: FlowFacts, now: number): Rule | undefined {
    const rule = this.set.match(facts, now);
    if (!rule) return undefined;
    if (rule.duration.kind === 'once') {
      this.memory = this.memory.filter((r) => r !== rule);
      this.rebuild();
      return { ...rule, hits: rule.hits + 1, lastHit: now };
    }
    this.countHit(rule, now);
    return rule;
  }

  /** Adds a rule from a spec (checked here too: the caller may hold unchecked input). */
  async add(spec: RuleSpec, now: number = Date.now()): Promise<Rule> {
    const checked = parseRuleSpec(spec);
    if (!checked.ok) throw new UserError(`invalid rule:\n  - ${checked.problems.join('\n  - ')}`);
    const spec2 = checked.value;
    if (spec2.duration.kind === 'once' || spec2.session) {
      // Decides the next matching flow only, or lasts until this process ends: kept in memory, never written.
      const rule = createRule(spec2, now, newRuleId((id) => this.get(id) !== undefined));
      this.memory = [...this.memory, rule];
      this.rebuild();
      return rule;
    }
    let rule: Rule | undefined;
    await this.commit((doc) => {
      rule = createRule(spec2, now, newRuleId((id) => doc.rules.some((r) => r.id === id)));
      return { ...doc, rules: [...doc.rules, rule] };
    });
    return rule as Rule;
  }

  /** Adds stored rules (import). Keeps each id unless it is taken; skips rules equal to one already
   *  present (same content, ignoring id, time and counters). One write for the whole batch. */
  async importRules(rules: readonly Rule[]): Promise<ImportOutcome[]> {
    const checkedRules: Rule[] = [];
    for (const input of rules) {
      const checked = parseRule(input);
      if (!checked.ok) throw new UserError(`invalid rule to import:\n  - ${checked.problems.join('\n  - ')}`);
      if (checked.value.duration.kind !== 'once' && !checked.value.session) checkedRules.push(checked.value);
    }
    let outcomes: ImportOutcome[] = [];
    await this.commit((doc) => {
      outcomes = [];
      const next = [...doc.rules];
      const byContent = new Map(next.map((r) => [ruleContentKey(r), r.id]));
      const taken = new Set(next.map((r) => r.id));
      for (const input of checkedRules) {
        const rule = { ...input };
        const existing = byContent.get(ruleContentKey(rule));
        if (existing !== undefined) {
          outcomes.push({ rule, result: 'duplicate', existing });
          continue;
        }
        // `fleet:` names the fleet's rules (fleet-layer.ts): a local rule never takes such an id.
        if (taken.has(rule.id) || isFleetRuleId(rule.id)) rule.id = newRuleId((id) => taken.has(id));
        taken.add(rule.id);
        byContent.set(ruleContentKey(rule), rule.id);
        next.push(rule);
        outcomes.push({ rule, result: 'added' });
      }
      return outcomes.some((o) => o.result === 'added') ? { ...doc, rules: next } : undefined;
    });
    return outcomes;
  }

  /** Removes a rule; undefined when there is no such id. */
  async remove(id: string): Promise<Rule | undefined> {
    const held = this.memory.find((r) => r.id === id);
    if (held) {
      this.memory = this.memory.filter((r) => r !== held);
      this.rebuild();
      return held;
    }
    let removed: Rule | undefined;
    await this.commit((doc) => {
      removed = doc.rules.find((r) => r.id === id);
      return removed ? { ...doc, rules: doc.rules.filter((r) => r !== removed) } : undefined;
    });
    return removed;
  }

  /** Replaces the fleet's rules (ids `fleet:…`); they match in their own layers (matcher.ts). */
  setFleetRules(rules: readonly Rule[]): void {
    this.fleet = [...rules];
    this.rebuild();
  }

  /** Enables or disables a rule; undefined when there is no such id. */
  async setEnabled(id: string, enabled: boolean): Promise<Rule | undefined> {
    let changed: Rule | undefined;
    await this.commit((doc) => {
      const rule = doc.rules.find((r) => r.id === id);
      if (!rule) return undefined;
      const updated: Rule = { ...rule, enabled };
      changed = updated;
      return { ...doc, rules: doc.rules.map((r) => (r === rule ? updated : r)) };
    });
    return changed;
  }

  /** Removes the rules kept for one process instance (call when the process has exited). */
  async removeProcessRules(token: string): Promise<Rule[]> {
    return this.removeWhere((r) => r.duration.kind === 'process' && r.duration.token === token);
  }

  /** Removes `until` rules whose time has passed; returns them. */
  async removeExpired(now: number = Date.now()): Promise<Rule[]> {
    return this.removeWhere((r) => r.duration.kind === 'until' && r.duration.until <= now);
  }

  private async removeWhere(test: (rule: Rule) => boolean): Promise<Rule[]> {
    const held = this.memory.filter(test);
    if (held.length > 0) {
      this.memory = this.memory.filter((r) => !test(r));
      this.rebuild();
    }
    let gone: Rule[] = [];
    await this.commit((doc) => {
      gone = doc.rules.filter(test);
      return gone.length > 0 ? { ...doc, rules: doc.rules.filter((r) => !test(r)) } : undefined;
    });
    return [...held, ...gone];
  }

  async setPolicy(policy: Policy): Promise<void> {
    await this.commit((doc) => ({ ...doc, policy: { ...policy } }));
  }

  /** Counts a hit in memory; the file is rewritten at most once per `hitFlushMs`. */
  recordHit(id: string, now: number = Date.now(), count = 1): void {
    const rule = this.doc.rules.find((r) => r.id === id) ?? this.memory.find((r) => r.id === id) ?? this.fleet.find((r) => r.id === id);
    if (rule) this.countHit(rule, now, count);
  }

  /** `rule` is one of the stored rule objects (the matcher hands those out): no lookup per hit. */
  private countHit(rule: Rule, now: number, count = 1): void {
    if (this.closed) return;
    rule.hits += count;
    rule.lastHit = now;
    this.hitsDirty = true;
    if (!this.hitTimer) {
      this.hitTimer = setTimeout(() => {
        this.hitTimer = undefined;
        this.flush().catch((error: Error) => {
          this.hitsDirty = true; // kept for the next flush; counters are not worth stopping for
          this.options.onFlushError?.(error);
        });
      }, this.options.hitFlushMs ?? 10_000);
      this.hitTimer.unref();
    }
  }

  /** Writes pending hit counters now. */
  async flush(): Promise<void> {
    if (!this.hitsDirty) return this.queue.then(() => undefined);
    await this.commit((doc) => doc);
  }

  /** Flushes counters and stops the timer. */
  async close(): Promise<void> {
    if (this.hitTimer) clearTimeout(this.hitTimer);
    this.hitTimer = undefined;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.ownerLock?.release();
      this.ownerLock = undefined;
    }
  }

  /** Applies `change` to the current document after earlier writes finish, writes the result, and
   *  only then makes it the store's state. `change` returns undefined when there is nothing to do. */
  private commit(change: (doc: RulesDocument) => RulesDocument | undefined): Promise<void> {
    const run = async (): Promise<void> => {
      // Not the owner: another process may have changed the file since it was read. Lock it, read it
      // again, and apply the change to that (never to a copy read before the lock).
      const lock = this.ownerLock ? undefined : await lockRulesFile(this.path, 'edit');
      try {
        if (!this.ownerLock) await this.reread();
        await this.write(change);
      } finally {
        lock?.release();
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async write(change: (doc: RulesDocument) => RulesDocument | undefined): Promise<void> {
    const next = change(this.doc);
    if (!next) return;
    if (!this.cleaned) {
      this.cleaned = true;
      await removeStaleTemps(this.path);
    }
    this.hitsDirty = false;
    try {
      await writeFileAtomic(this.path, serializeRulesDocument(next), { beforeRename: this.options.beforeRename });
    } catch (error) {
      this.hitsDirty = true;
      throw new UserError(`cannot write the rules file ${this.path}: ${(error as Error).message}`, 'check the disk and the permissions of its folder; the previous file is unchanged');
    }
    if (next !== this.doc) {
      this.doc = next;
      this.rebuild();
    }
  }

  /** The file as it is now, keeping hit counters counted here and not yet written. */
  private async reread(): Promise<void> {
    const fresh = (await readRulesFile(this.path)).document;
    if (this.hitsDirty) {
      const mine = new Map(this.doc.rules.map((r) => [r.id, r]));
      for (const rule of fresh.rules) {
        const counted = mine.get(rule.id);
        if (counted && counted.hits > rule.hits) {
          rule.hits = counted.hits;
          if (counted.lastHit !== undefined) rule.lastHit = counted.lastHit;
        }
      }
    }
    this.doc = fresh;
    this.rebuild();
  }
}
