// What an import produced: rules ready to store, and in words what could not be mapped or was changed.
import type { Rule, RuleSpec } from '../../protocol/messages.js';
import { createRule, newRuleId } from '../model.js';
import { parseRuleSpec } from '../schema.js';

/** The input is not in the format it was read as (the message says what was expected). */
export class ImportFormatError extends Error {}

export type ImportFormat = 'flowtop' | 'lulu' | 'opensnitch';

export interface ImportReport {
  format: ImportFormat;
  rules: Rule[];
  /** Source rules left out, each with why (e.g. a regular expression flowtop cannot match). */
  skipped: Array<{ source: string; reason: string }>;
  /** Source rules imported with a change a person should know about (e.g. path only, weaker). */
  notes: Array<{ source: string; note: string }>;
}

export function emptyReport(format: ImportFormat): ImportReport {
  return { format, rules: [], skipped: [], notes: [] };
}

/** Checks a mapped spec and adds it as a rule, or records why it was skipped. The rule's notes are
 *  reported only once it is added: a note must never speak of a rule that was then skipped. */
export function addMapped(report: ImportReport, source: string, spec: RuleSpec, created: number, notes: readonly string[] = []): boolean {
  const checked = parseRuleSpec(spec, source);
  if (!checked.ok) {
    report.skipped.push({ source, reason: checked.problems.map((p) => p.slice(source.length).replace(/^[ :]+/, '')).join('; ') });
    return false;
  }
  const taken = new Set(report.rules.map((r) => r.id));
  report.rules.push(createRule(checked.value, created, newRuleId((id) => taken.has(id))));
  for (const note of notes) report.notes.push({ source, note });
  return true;
}

/** Milliseconds from an ISO-8601 time, also "+0200" offsets (Foundation's "Z" pattern), or from Unix
 *  seconds (OpenSnitch's UI exported `created` so up to v1.6.5); undefined if unreadable. */
export function parseTime(value: unknown): number | undefined {
  if (typeof value === 'number' || (typeof value === 'string' && /^\d{1,12}$/.test(value))) {
    const seconds = Number(value);
    return Number.isSafeInteger(seconds) && seconds > 0 ? seconds * 1000 : undefined;
  }
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const text = value.replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
