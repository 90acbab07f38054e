// Small checks for hand-written JSON: each returns an error sentence naming the field, or undefined.
// Used by the scenario reader; the protocol's own fields are checked by the protocol codec instead.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Names the first key not in `allowed` (a misspelt field would otherwise be ignored in silence). */
export function unknownKey(value: JsonObject, allowed: readonly string[], where: string): string | undefined {
  const extra = Object.keys(value).find((key) => !allowed.includes(key));
  return extra === undefined ? undefined : `${where}: unknown field "${extra}" (expected one of ${allowed.join(', ')})`;
}

export function checkString(value: unknown, field: string, optional = false): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value.length === 0) return `${field} must be a non-empty string`;
  return undefined;
}

export function checkCount(value: unknown, field: string, optional = false): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return `${field} must be a whole number ≥ 0`;
  return undefined;
}

export function checkOneOf(value: unknown, field: string, choices: readonly string[], optional = false): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || !choices.includes(value)) return `${field} must be one of ${choices.join(', ')}`;
  return undefined;
}

/** Canonical base64 of at least one byte, or undefined when `value` is not base64. */
export function base64Bytes(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length % 4 !== 0) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length > 0 && bytes.toString('base64') === value ? bytes : undefined;
}

export function firstError(...checks: Array<string | undefined>): string | undefined {
  return checks.find((check) => check !== undefined);
}
