// Field readers for the protocol decoder. Hand-written on purpose rather than a schema library:
// - the protocol is small and fixed (about twenty object shapes), so a library would add a runtime
//   dependency and its update churn for little code saved;
// - every error must name the field path and what was wrong in words a person (or the author of a
//   Swift/C extension) can act on, e.g. `flow.local.port: expected an integer from 0 to 65535, got "http"`;
// - the decoder copies only the fields the spec defines into fresh objects, so unknown fields (allowed
//   for forward compatibility) are dropped and nothing from the wire reaches a prototype;
// - it is on the hot path (tens of thousands of flows per second) and these readers do no allocation
//   beyond the result.
// A reader throws `Invalid`; codec.ts catches it at the top, so the decoder as a whole never throws.

export type Obj = Record<string, unknown>;

export class Invalid extends Error {
  constructor(readonly path: string, readonly expected: string, readonly got: unknown, readonly missing = false) {
    super(missing ? `${path}: required field is missing (expected ${expected})` : `${path}: expected ${expected}, got ${describe(got)}`);
  }
}

/** A value another checker refused, in that checker's words (a rule: rules/schema.ts). */
export class Refused extends Invalid {
  constructor(path: string, problems: readonly string[]) {
    super(path, 'a valid value', undefined);
    const text = problems.join('; ');
    // An error message is at most 4096 characters on the wire (docs/protocol.md, "Limits").
    this.message = text.length > 4000 ? `${text.slice(0, 3999)}…` : text;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case 'number':
    case 'boolean':
      return String(value);
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;

/** Own property only; null counts as absent (encoders in Swift/C often write null for "none"). */
function field(o: Obj, key: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(o, key)) return undefined;
  const v = o[key];
  return v === null ? undefined : v;
}

function need(o: Obj, key: string, path: string, expected: string): unknown {
  const v = field(o, key);
  if (v === undefined) throw new Invalid(join(path, key), expected, undefined, true);
  return v;
}

export function asObject(value: unknown, path: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid(path || 'message', 'an object', value);
  return value as Obj;
}

export function object(o: Obj, key: string, path: string): Obj {
  return asObject(need(o, key, path, 'an object'), join(path, key));
}

export function optObject(o: Obj, key: string, path: string): Obj | undefined {
  const v = field(o, key);
  return v === undefined ? undefined : asObject(v, join(path, key));
}

export function string(o: Obj, key: string, path: string, max: number, min = 1): string {
  const expected = `a string of ${min} to ${max} characters`;
  const v = need(o, key, path, expected);
  if (typeof v !== 'string' || v.length < min || v.length > max) throw new Invalid(join(path, key), expected, v);
  return v;
}

export function optString(o: Obj, key: string, path: string, max: number, min = 1): string | undefined {
  return field(o, key) === undefined ? undefined : string(o, key, path, max, min);
}

export function integer(o: Obj, key: string, path: string, min: number, max: number): number {
  const expected = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
  const v = need(o, key, path, expected);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Invalid(join(path, key), expected, v);
  return v;
}

export function optInteger(o: Obj, key: string, path: string, min: number, max: number): number | undefined {
  return field(o, key) === undefined ? undefined : integer(o, key, path, min, max);
}

/** Milliseconds since the Unix epoch: a finite number ≥ 0 (fractions allowed). */
export function time(o: Obj, key: string, path: string): number {
  const expected = 'a time in milliseconds since the Unix epoch (number ≥ 0)';
  const v = need(o, key, path, expected);
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Invalid(join(path, key), expected, v);
  return v;
}

export function optTime(o: Obj, key: string, path: string): number | undefined {
  return field(o, key) === undefined ? undefined : time(o, key, path);
}

export function boolean(o: Obj, key: string, path: string): boolean {
  const v = need(o, key, path, 'true or false');
  if (typeof v !== 'boolean') throw new Invalid(join(path, key), 'true or false', v);
  return v;
}

export function optBoolean(o: Obj, key: string, path: string): boolean | undefined {
  return field(o, key) === undefined ? undefined : boolean(o, key, path);
}

export function oneOf<T extends string>(o: Obj, key: string, path: string, values: readonly T[]): T {
  const expected = `one of ${values.map((x) => `"${x}"`).join(', ')}`;
  const v = need(o, key, path, expected);
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw new Invalid(join(path, key), expected, v);
  return v as T;
}

export function optOneOf<T extends string>(o: Obj, key: string, path: string, values: readonly T[]): T | undefined {
  return field(o, key) === undefined ? undefined : oneOf(o, key, path, values);
}

export function array<T>(o: Obj, key: string, path: string, item: (value: unknown, path: string) => T): T[] {
  const v = need(o, key, path, 'an array');
  if (!Array.isArray(v)) throw new Invalid(join(path, key), 'an array', v);
  const base = join(path, key);
  const out: T[] = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], join(base, i));
  return out;
}

// Standard alphabet with padding (RFC 4648 §4); Node's decoder alone would accept garbage silently.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
export const MAX_TOKEN_BYTES = 64;

/** Whether text is a process token: canonical padded base64 of 1 to MAX_TOKEN_BYTES bytes. */
export function isToken(v: string): boolean {
  if (v.length === 0 || v.length > Math.ceil(MAX_TOKEN_BYTES / 3) * 4 || !BASE64.test(v)) return false;
  const padding = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  return (v.length / 4) * 3 - padding <= MAX_TOKEN_BYTES;
}

/** A process token (see isToken). Returned unchanged (still base64). */
export function optToken(o: Obj, key: string, path: string): string | undefined {
  const v = field(o, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !isToken(v)) throw new Invalid(join(path, key), `a token: padded base64 of 1 to ${MAX_TOKEN_BYTES} bytes`, v);
  return v;
}

export function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}
