// CF value readers and the release scope, against the fake heap.
// Runs on Linux against the fake; the same readers over the real CoreFoundation are NOT YET RUN ON A MAC.
import { describe, expect, it } from 'vitest';
import { CFScope, readTypeIds, readValue, withScope } from '../../src/native/darwin/cf.js';
import { FakeDarwin } from './fake-darwin.js';

describe('reading CF values', () => {
  const fake = new FakeDarwin();
  const ids = readTypeIds(fake);

  it('decodes UTF-8 strings, including characters wider than one byte', () => {
    const ref = fake.make('string', 'Zoë — 日本 🚀');
    expect(readValue(fake, ids, ref)).toEqual({ kind: 'string', value: 'Zoë — 日本 🚀' });
    expect(readValue(fake, ids, fake.make('string', ''))).toEqual({ kind: 'string', value: '' });
  });

  it('decodes numbers as 64-bit signed values and refuses ones JavaScript cannot hold exactly', () => {
    expect(readValue(fake, ids, fake.make('number', 0x10000n))).toEqual({ kind: 'number', value: 65536 });
    expect(readValue(fake, ids, fake.make('number', -5n))).toEqual({ kind: 'number', value: -5 });
    expect(readValue(fake, ids, fake.make('number', 1n << 60n)).kind).toBe('other');
  });

  it('decodes data byte for byte (a cdhash)', () => {
    const bytes = Uint8Array.from([0, 1, 0xfe, 0xff, 0x80]);
    const v = readValue(fake, ids, fake.make('data', bytes));
    expect(v.kind).toBe('data');
    expect(v.kind === 'data' && Buffer.from(v.value).toString('hex')).toBe('0001feff80');
    const empty = readValue(fake, ids, fake.make('data', new Uint8Array(0)));
    expect(empty.kind === 'data' && empty.value.length).toBe(0);
  });

  it('lists array elements in order, without taking ownership of them', () => {
    const a = fake.make('string', 'a');
    const b = fake.make('string', 'b');
    const v = readValue(fake, ids, fake.make('array', [a, b]));
    expect(v).toEqual({ kind: 'array', value: [a, b] });
    expect(fake.count('CFRelease')).toBe(0);
  });
});

describe('CFScope', () => {
  it('releases each owned object exactly once, newest first, even when the body throws', () => {
    const fake = new FakeDarwin();
    const a = fake.make('string', 'a');
    const b = fake.make('string', 'b');
    expect(() =>
      withScope(fake, (scope) => {
        scope.own(a);
        scope.take([b]);
        scope.own(null);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(fake.calls.filter((c) => c.name === 'CFRelease').map((c) => c.args[0])).toEqual([b, a]);
    expect(fake.live()).toEqual([]);
    expect(fake.errors).toEqual([]);
  });

  it('closing twice releases nothing twice, and a closed scope refuses new objects', () => {
    const fake = new FakeDarwin();
    const scope = new CFScope(fake);
    scope.own(fake.make('string', 'x'));
    scope.close();
    scope.close();
    expect(fake.count('CFRelease')).toBe(1);
    expect(() => scope.own(fake.make('string', 'y'))).toThrow(/after close/);
  });
});
