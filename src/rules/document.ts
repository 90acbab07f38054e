// The rules file: one versioned JSON document {version: 1, policy, rules} (docs/rules.md, "File").
import type { Rule } from '../protocol/messages.js';
import { parseRule, ruleWhere, type Checked } from './schema.js';
import { DEFAULT_POLICY, parsePolicy, type Policy } from './policy.js';

export const RULES_FILE_VERSION = 1;
const MAX_PROBLEMS = 20;

export interface RulesDocument {
  version: typeof RULES_FILE_VERSION;
  policy: Policy;
  rules: Rule[];
}

export function emptyDocument(): RulesDocument {
  return { version: RULES_FILE_VERSION, policy: { ...DEFAULT_POLICY }, rules: [] };
}

/** Checks a parsed rules document; every problem names the rule (index and id) and the field. */
export function parseRulesDocument(value: unknown): Checked<RulesDocument> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problems: ['the document must be a JSON object {"version": 1, "policy": {...}, "rules": [...]}'] };
  }
  const o = value as Record<string, unknown>;
  const problems: string[] = [];
  if (o['version'] !== RULES_FILE_VERSION) {
    const v = o['version'];
    problems.push(typeof v === 'number' && v > RULES_FILE_VERSION
      ? `version ${v} was written by a newer flowtop (this one reads version ${RULES_FILE_VERSION})`
      : `version: must be ${RULES_FILE_VERSION}, got ${JSON.stringify(v)}`);
    return { ok: false, problems };
  }
  for (const key of Object.keys(o)) if (!['version', 'policy', 'rules'].includes(key)) problems.push(`${key}: is not a known field (known: version, policy, rules)`);
  const policy = parsePolicy(o['policy']);
  if (!policy.ok) problems.push(...policy.problems);
  const rules: Rule[] = [];
  const list = o['rules'] ?? [];
  if (!Array.isArray(list)) {
    problems.push(`rules: must be a list, got ${JSON.stringify(list).slice(0, 40)}`);
  } else {
    const seen = new Map<string, number>();
    list.forEach((item, index) => {
      const where = ruleWhere(item, index);
      const checked = parseRule(item, where);
      if (!checked.ok) return void problems.push(...checked.problems);
      const rule = checked.value;
      if (rule.duration.kind === 'once') problems.push(`${where} duration.kind: "once" applies to one flow and is never stored`);
      if (rule.session) problems.push(`${where} session: a session rule lasts until the agent restarts and is never stored`);
      const earlier = seen.get(rule.id);
      if (earlier !== undefined) problems.push(`${where} id: "${rule.id}" is also the id of rules[${earlier}]`);
      else seen.set(rule.id, index);
      rules.push(rule);
    });
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS) shown.push(`… and ${problems.length - MAX_PROBLEMS} more problems`);
    return { ok: false, problems: shown };
  }
  return { ok: true, value: { version: RULES_FILE_VERSION, policy: policy.ok ? policy.value : { ...DEFAULT_POLICY }, rules } };
}

/** The file's text: stable field order, two-space indent, final newline. */
export function serializeRulesDocument(doc: RulesDocument): string {
  return `${JSON.stringify({ version: doc.version, policy: doc.policy, rules: doc.rules }, null, 2)}\n`;
}
