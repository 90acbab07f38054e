import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { Attributor, type AttributionUpdate } from '../../src/attribution/attributor.js';
import { Batcher } from '../../src/attribution/batcher.js';
import { LruCache } from '../../src/attribution/lru.js';
import type { Attribution, AttributionBackend } from '../../src/attribution/types.js';

/** A backend that answers from a table and records every call (the real Linux backend is tested in
 *  test/native-linux; here only the counting matters). */
function countingBackend(answer: (hex: string) => Attribution = (hex) => ({ trust: 'secure', name: `p-${hex.slice(0, 4)}` })) {
  const calls: string[][] = [];
  const backend: AttributionBackend = {
    kind: 'replay',
    resolve: async (tokens) => {
      const keys = tokens.map((t) => Buffer.from(t).toString('hex'));
      calls.push(keys);
      return keys.map(answer);
    },
  };
  return { backend, calls };
}

const token = (n: number): string => {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(n, 0);
  return b.toString('base64');
};

const newScheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('Batcher in virtual time', () => {
  it('sends a batch when its window ends, or at once when it is full', () => {
    const ts = newScheduler();
    ts.run(({ cold, flush }) => {
      const seen: Array<[number, string[]]> = [];
      const batcher = new Batcher((keys) => seen.push([ts.now(), keys]), { windowMs: 5, maxBatch: 3, scheduler: ts });
      cold('a-b---cde-----------f').subscribe((key) => batcher.add(key));
      flush();
      expect(seen).toEqual([[5, ['a', 'b']], [8, ['c', 'd', 'e']], [25, ['f']]]);
    });
  });

  it('does not queue a key twice', () => {
    const ts = newScheduler();
    ts.run(({ cold, flush }) => {
      const seen: string[][] = [];
      const batcher = new Batcher((keys) => seen.push(keys), { windowMs: 10, maxBatch: 10, scheduler: ts });
      cold('aabab').subscribe((key) => batcher.add(key));
      flush();
      expect(seen).toEqual([['a', 'b']]);
    });
  });
});

describe('Attributor batching', () => {
  it('N flows with M distinct tokens cause exactly M lookups in ⌈M/batch⌉ calls', async () => {
    const ts = newScheduler();
    const { backend, calls } = countingBackend();
    const N = 5_000;
    const M = 700;
    const maxBatch = 64;
    const attributor = new Attributor(backend, { windowMs: 3, maxBatch, scheduler: ts });
    ts.run(({ flush }) => {
      for (let i = 0; i < N; i++) expect(attributor.request(token(i % M)).trust).toBe('pending');
      flush();
    });
    await new Promise((resolve) => setImmediate(resolve));
    const asked = calls.flat();
    expect(asked).toHaveLength(M);
    expect(new Set(asked).size).toBe(M);
    expect(calls).toHaveLength(Math.ceil(M / maxBatch));
    expect(calls.every((c) => c.length <= maxBatch)).toBe(true);
    // Every later request is a cache hit: no new call.
    for (let i = 0; i < N; i++) expect(attributor.request(token(i % M)).trust).toBe('secure');
    expect(calls).toHaveLength(Math.ceil(M / maxBatch));
    expect(attributor.stats()).toMatchObject({ lookups: M, batches: Math.ceil(M / maxBatch), hits: N, inFlight: 0, cached: M });
  });

  it('does not ask again for a token whose lookup is still running, and tells every asker', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls: number[] = [];
    const backend: AttributionBackend = {
      kind: 'replay',
      resolve: async (tokens) => {
        calls.push(tokens.length);
        await gate;
        return tokens.map(() => ({ trust: 'secure', name: 'x' }));
      },
    };
    const attributor = new Attributor(backend, { windowMs: 0, maxBatch: 10 });
    const updates: AttributionUpdate[][] = [];
    attributor.updates$.subscribe((u) => updates.push(u));
    attributor.request(token(1));
    attributor.flush();
    expect(calls).toEqual([1]);
    // In flight now: asking again (even twice) must not start a second lookup.
    expect(attributor.request(token(1)).trust).toBe('pending');
    attributor.flush();
    expect(calls).toEqual([1]);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(updates).toHaveLength(1);
    expect(updates[0]).toEqual([{ key: token(1), attribution: { trust: 'secure', name: 'x' } }]);
    expect(attributor.request(token(1))).toEqual({ trust: 'secure', name: 'x' });
  });

  it('caches gone answers as final and does not cache a failed backend call', async () => {
    let fail = true;
    const calls: string[][] = [];
    const backend: AttributionBackend = {
      kind: 'replay',
      resolve: async (tokens) => {
        calls.push(tokens.map((t) => Buffer.from(t).toString('hex')));
        if (fail) throw new Error('worker crashed');
        return tokens.map(() => ({ trust: 'gone', reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process has exited' } }));
      },
    };
    const attributor = new Attributor(backend, { windowMs: 0 });
    const updates: AttributionUpdate[][] = [];
    attributor.updates$.subscribe((u) => updates.push(u));
    attributor.request(token(7));
    attributor.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(updates[0]?.[0]?.attribution.trust).toBe('insecure');
    expect(updates[0]?.[0]?.attribution.reason?.message).toContain('worker crashed');
    // Not cached: asked again.
    fail = false;
    expect(attributor.request(token(7)).trust).toBe('pending');
    attributor.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(attributor.request(token(7)).trust).toBe('gone');
    attributor.request(token(7));
    attributor.flush();
    expect(calls).toHaveLength(2);
  });

  it('answers a malformed token at once without a lookup', () => {
    const { backend, calls } = countingBackend();
    const attributor = new Attributor(backend, { windowMs: 0 });
    for (const bad of ['', 'not base64!', 'abc', 'x'.repeat(2000)]) {
      const answer = attributor.request(bad);
      expect(answer.trust).toBe('insecure');
      expect(answer.reason?.call).toBe('decode token');
    }
    attributor.flush();
    expect(calls).toHaveLength(0);
  });

  it('keys the cache by token bytes: two tokens for the same PID are two entries', async () => {
    const { backend, calls } = countingBackend((hex) => ({ trust: 'secure', pid: 42, name: hex }));
    const attributor = new Attributor(backend, { windowMs: 0 });
    const a = Buffer.alloc(24);
    a.writeUInt32LE(42, 0);
    a.writeBigUInt64LE(100n, 8);
    const b = Buffer.from(a);
    b.writeBigUInt64LE(200n, 8); // same PID, later start: another process
    attributor.request(a.toString('base64'));
    attributor.request(b.toString('base64'));
    attributor.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls.flat()).toHaveLength(2);
    expect(attributor.request(a.toString('base64')).name).not.toBe(attributor.request(b.toString('base64')).name);
  });

  it('keeps the cache bounded', async () => {
    const { backend } = countingBackend();
    const attributor = new Attributor(backend, { windowMs: 0, cacheSize: 10 });
    for (let i = 0; i < 50; i++) attributor.request(token(i));
    attributor.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(attributor.stats().cached).toBe(10);
    expect(attributor.peek(token(49))?.trust).toBe('secure');
    expect(attributor.peek(token(0))).toBeUndefined();
  });
});

describe('LruCache', () => {
  it('evicts the least recently used entry', () => {
    const cache = new LruCache<number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    cache.set('c', 3);
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('a')).toBe(1);
    expect(cache.peek('c')).toBe(3);
    expect(() => new LruCache(0)).toThrow(RangeError);
  });
});
