// CoreFoundation helpers over DarwinBindings: a scope that releases every owned object exactly once,
// and readers that turn borrowed CF values into plain JavaScript values.
// Pure logic over the injected bindings; tested on Linux with a fake. NOT YET RUN ON A MAC.
import {
  kCFNumberSInt64Type,
  kCFStringEncodingUTF8,
  type CFOut,
  type CFRef,
  type DarwinBindings,
} from './bindings.js';

/** Owns the results of Create/Copy calls and releases them, in reverse order, when closed.
 *  A long-running monitor resolves millions of tokens: one missed CFRelease per lookup is a leak. */
export class CFScope {
  private readonly owned: CFRef[] = [];
  private readonly cleanups: Array<() => void> = [];
  private closed = false;

  constructor(private readonly cf: Pick<DarwinBindings, 'CFRelease'>) {}

  /** Takes ownership of a Create/Copy result (null is ignored) and returns it. */
  own<T extends CFRef | null>(ref: T): T {
    if (this.closed) throw new Error('CFScope used after close');
    if (ref !== null) this.owned.push(ref);
    return ref;
  }

  /** Takes ownership of what a Copy call put in its out-slot. */
  take(out: CFOut): CFRef | null {
    return this.own(out[0]);
  }

  /** Runs a non-CF cleanup (a Mach port) when the scope closes. */
  defer(cleanup: () => void): void {
    if (this.closed) throw new Error('CFScope used after close');
    this.cleanups.push(cleanup);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let i = this.cleanups.length - 1; i >= 0; i--) this.cleanups[i]!();
    for (let i = this.owned.length - 1; i >= 0; i--) this.cf.CFRelease(this.owned[i]!);
    this.owned.length = 0;
    this.cleanups.length = 0;
  }
}

/** Runs `body` with a fresh scope and closes it however `body` ends. */
export function withScope<T>(cf: Pick<DarwinBindings, 'CFRelease'>, body: (scope: CFScope) => T): T {
  const scope = new CFScope(cf);
  try {
    return body(scope);
  } finally {
    scope.close();
  }
}

/** A CF value read into JavaScript. Dictionaries and unknown types are not decoded here. */
export type CFValue =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'data'; value: Uint8Array }
  | { kind: 'array'; value: CFRef[] }
  | { kind: 'dictionary'; ref: CFRef }
  | { kind: 'other'; typeId: number };

export interface CFTypeIds {
  string: number;
  number: number;
  data: number;
  array: number;
  dictionary: number;
}

export function readTypeIds(cf: DarwinBindings): CFTypeIds {
  return {
    string: cf.CFStringGetTypeID(),
    number: cf.CFNumberGetTypeID(),
    data: cf.CFDataGetTypeID(),
    array: cf.CFArrayGetTypeID(),
    dictionary: cf.CFDictionaryGetTypeID(),
  };
}

/** Decodes a borrowed CF value by its type id. Never releases `ref`. */
export function readValue(cf: DarwinBindings, ids: CFTypeIds, ref: CFRef): CFValue {
  const typeId = cf.CFGetTypeID(ref);
  if (typeId === ids.string) {
    const value = readString(cf, ref);
    return value === undefined ? { kind: 'other', typeId } : { kind: 'string', value };
  }
  if (typeId === ids.number) {
    const value = readNumber(cf, ref);
    return value === undefined ? { kind: 'other', typeId } : { kind: 'number', value };
  }
  if (typeId === ids.data) return { kind: 'data', value: readData(cf, ref) };
  if (typeId === ids.array) return { kind: 'array', value: readArray(cf, ref) };
  if (typeId === ids.dictionary) return { kind: 'dictionary', ref };
  return { kind: 'other', typeId };
}

export function readString(cf: DarwinBindings, ref: CFRef): string | undefined {
  const length = cf.CFStringGetLength(ref);
  // Worst case UTF-8 size of `length` UTF-16 units, plus the terminating NUL.
  const size = cf.CFStringGetMaximumSizeForEncoding(length, kCFStringEncodingUTF8) + 1;
  if (size <= 0 || size > 1 << 24) return undefined;
  const buffer = Buffer.alloc(size);
  if (!cf.CFStringGetCString(ref, buffer, size, kCFStringEncodingUTF8)) return undefined;
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end === -1 ? size : end);
}

export function readNumber(cf: DarwinBindings, ref: CFRef): number | undefined {
  const out = Buffer.alloc(8);
  if (!cf.CFNumberGetValue(ref, kCFNumberSInt64Type, out)) return undefined;
  const value = out.readBigInt64LE(0);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}

export function readData(cf: DarwinBindings, ref: CFRef): Uint8Array {
  const length = cf.CFDataGetLength(ref);
  if (length <= 0) return new Uint8Array(0);
  const out = Buffer.alloc(length);
  cf.CFDataGetBytes(ref, { location: 0, length }, out);
  return new Uint8Array(out);
}

/** The borrowed elements of a CFArray (nulls skipped). */
export function readArray(cf: DarwinBindings, ref: CFRef): CFRef[] {
  const count = cf.CFArrayGetCount(ref);
  const items: CFRef[] = [];
  for (let i = 0; i < count; i++) {
    const item = cf.CFArrayGetValueAtIndex(ref, i);
    if (item !== null) items.push(item);
  }
  return items;
}

/** A borrowed dictionary value as a string, if it is one. */
export function dictString(cf: DarwinBindings, ids: CFTypeIds, dict: CFRef, key: CFRef): string | undefined {
  const ref = cf.CFDictionaryGetValue(dict, key);
  if (ref === null) return undefined;
  const value = readValue(cf, ids, ref);
  return value.kind === 'string' ? value.value : undefined;
}

/** Creates an owned CFString in `scope`. */
export function createString(cf: DarwinBindings, scope: CFScope, text: string): CFRef | null {
  return scope.own(cf.CFStringCreateWithCString(text, kCFStringEncodingUTF8));
}
