// The fleet's rules as one agent keeps them (docs/rules.md, "Fleet rules"): read from the rules bucket
// (keys `all.<id>` and `host.<host>.<id>`), each checked with the rule schema, applied at once, and
// kept in a local copy beside the rules file (written atomically), so an agent restarted while NATS is
// unreachable still enforces the last rules it had.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Rule, RuleChangedMessage } from '../protocol/messages.js';
import { writeFileAtomic } from '../rules/atomic-file.js';
import { FLEET_ID_PREFIX } from '../rules/fleet-layer.js';
import { parseRule } from '../rules/schema.js';

/** A rule id inside a bucket key: short enough that `fleet:host.<host>.<id>` fits a rule id. */
export const FLEET_RULE_ID = /^[A-Za-z0-9_-]{1,48}$/;

/** Where the last copy of the fleet's rules is kept: `rules.json` → `rules.fleet.json`. */
export function fleetCopyPath(rulesPath: string): string {
  return join(dirname(rulesPath), `${basename(rulesPath).replace(/\.json$/, '')}.fleet.json`);
}

/** The bucket key of a fleet rule for every host, or for one. */
export function fleetRuleKey(target: { all: true } | { host: string }, ruleId: string): string {
  return 'all' in target ? `all.${ruleId}` : `host.${target.host}.${ruleId}`;
}

/** A bucket entry as a rule of this host, or why it is not one. The value is a stored rule (as
 *  `flowtop rules add --nats` writes it) or a bare rule spec; its id becomes `fleet:<key>`. */
export function fleetRuleFrom(key: string, value: string, host: string): Rule | string {
  const m = /^(?:all|host\.([A-Za-z0-9_-]{1,64}))\.([^.]+)$/.exec(key);
  if (!m) return `key "${key}" is neither all.<id> nor host.<host>.<id>`;
  if (m[1] !== undefined && m[1] !== host) return `key "${key}" is for host ${m[1]}`;
  if (!FLEET_RULE_ID.test(m[2]!)) return `key "${key}": a rule id is 1–48 letters, digits, "_" or "-"`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return `key "${key}": not JSON`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return `key "${key}": not a rule object`;
  const { id: _id, hits: _hits, lastHit: _lastHit, session: _session, ...spec } = parsed as Record<string, unknown>;
  const checked = parseRule({ created: 0, ...spec, id: `${FLEET_ID_PREFIX}${key}`, hits: 0 }, `fleet rule ${key}`);
  if (!checked.ok) return checked.problems.join('; ');
  const rule = checked.value;
  if (rule.duration.kind === 'process' || rule.duration.kind === 'once') {
    return `key "${key}": a fleet rule cannot last "${rule.duration.kind}" (a process token or a single use means nothing across hosts)`;
  }
  return rule;
}

export interface FleetRulesOptions {
  host: string;
  copyPath: string;
  /** Puts the rules in force (the store's fleet layer). */
  apply(rules: readonly Rule[]): void;
  /** The changes, for the queue threads and the clients. */
  changed(changes: RuleChangedMessage[]): void;
  log(line: string): void;
}

export class FleetRules {
  private readonly entries = new Map<string, { value: string; rule: Rule }>();
  private writing: Promise<void> = Promise.resolve();
  private readonly refused = new Map<string, string>();

  constructor(private readonly options: FleetRulesOptions) {}

  get size(): number {
    return this.entries.size;
  }

  /** The last copy, at start: enforced until NATS says otherwise. */
  async loadCopy(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.options.copyPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.options.log(`fleet rules: the local copy ${this.options.copyPath} could not be read: ${(error as Error).message}`);
      return;
    }
    let entries: Array<{ key: string; value: string }>;
    try {
      const doc = JSON.parse(text) as { version?: unknown; host?: unknown; entries?: unknown };
      if (doc.version !== 1 || !Array.isArray(doc.entries)) throw new Error('not a version 1 copy');
      if (doc.host !== this.options.host) {
        this.options.log(`fleet rules: the local copy is for host ${String(doc.host)}, not ${this.options.host}: ignored`);
        return;
      }
      entries = (doc.entries as unknown[]).filter((e): e is { key: string; value: string } =>
        typeof e === 'object' && e !== null && typeof (e as { key?: unknown }).key === 'string' && typeof (e as { value?: unknown }).value === 'string');
    } catch (error) {
      this.options.log(`fleet rules: the local copy ${this.options.copyPath} is not valid (${(error as Error).message}): ignored`);
      return;
    }
    this.replaceAll(entries, false);
    this.options.log(`fleet rules: ${this.entries.size} from the local copy ${this.options.copyPath} (until NATS is reached)`);
  }

  /** The whole set as the bucket holds it now. */
  replaceAll(entries: ReadonlyArray<{ key: string; value: string }>, save = true): void {
    const before = new Map(this.entries);
    this.entries.clear();
    for (const e of entries) this.put(e.key, e.value);
    this.commit(before, save);
  }

  /** One key changed (`value` undefined: deleted). */
  change(key: string, value: string | undefined): void {
    const before = new Map(this.entries);
    if (value === undefined) this.entries.delete(key);
    else this.put(key, value);
    this.commit(before, true);
  }

  private put(key: string, value: string): void {
    const rule = fleetRuleFrom(key, value, this.options.host);
    if (typeof rule === 'string') {
      this.entries.delete(key);
      // Said once per key and problem: a bad entry is skipped, never fatal.
      if (this.refused.get(key) !== rule) this.options.log(`fleet rules: skipped: ${rule}`);
      this.refused.set(key, rule);
      return;
    }
    this.refused.delete(key);
    this.entries.set(key, { value, rule });
  }

  private commit(before: Map<string, { value: string; rule: Rule }>, save: boolean): void {
    const changes: RuleChangedMessage[] = [];
    for (const [key, e] of this.entries) {
      const old = before.get(key);
      if (!old) changes.push({ type: 'rule-changed', op: 'added', rule: e.rule });
      else if (old.value !== e.value) changes.push({ type: 'rule-changed', op: 'updated', rule: e.rule });
      else e.rule = old.rule; // unchanged: keep the object (and its hit count)
    }
    for (const [key, old] of before) if (!this.entries.has(key)) changes.push({ type: 'rule-changed', op: 'removed', rule: old.rule });
    if (changes.length === 0) return;
    this.options.apply([...this.entries.values()].map((e) => e.rule));
    this.options.changed(changes);
    if (save) this.save();
  }

  /** Writes the copy; writes are queued so the last one wins. */
  private save(): void {
    const text = `${JSON.stringify({ version: 1, host: this.options.host, saved: Date.now(), entries: [...this.entries].map(([key, e]) => ({ key, value: e.value })) }, null, 1)}\n`;
    this.writing = this.writing.then(() => writeFileAtomic(this.options.copyPath, text, { mode: 0o644 })).catch((error: unknown) => {
      this.options.log(`fleet rules: the local copy ${this.options.copyPath} could not be written: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  /** Resolves once the copy on disk is the latest. */
  flushed(): Promise<void> {
    return this.writing;
  }
}
