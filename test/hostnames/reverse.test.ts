import { afterEach, describe, expect, it, vi } from 'vitest';
import { HostNameMap } from '../../src/hostnames/map.js';
import { ReverseLookup } from '../../src/hostnames/reverse.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('ReverseLookup', () => {
  it('starts at most perSecond lookups per second and fills the map with source "reverse"', async () => {
    vi.useFakeTimers();
    const asked: string[] = [];
    const map = new HostNameMap();
    const reverse = new ReverseLookup(map, {
      perSecond: 2,
      concurrency: 10,
      resolver: async (address) => {
        asked.push(address);
        return [`Host-${address.replace(/\./g, '-')}.example.`];
      },
    });
    for (let i = 1; i <= 5; i++) reverse.request(`192.0.2.${i}`);
    reverse.request('192.0.2.1'); // already queued: not asked twice
    await vi.advanceTimersByTimeAsync(0);
    expect(asked).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(asked).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(1000);
    expect(asked).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5']);
    expect(map.lookup('192.0.2.3')).toMatchObject({ name: 'host-192-0-2-3.example', source: 'reverse' });
    reverse.request('192.0.2.3'); // known now: not asked again
    await vi.advanceTimersByTimeAsync(2000);
    expect(asked).toHaveLength(5);
    reverse.close();
  });

  it('does not repeat a failed lookup until retryAfterMs, and sanitises odd PTR data', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const map = new HostNameMap();
    const reverse = new ReverseLookup(map, {
      retryAfterMs: 60_000,
      resolver: async (address) => {
        calls++;
        if (address === '192.0.2.9') throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
        return ['evil\x1b]0;title\x07.test'];
      },
    });
    reverse.request('192.0.2.9');
    await vi.advanceTimersByTimeAsync(10);
    reverse.request('192.0.2.9');
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    reverse.request('192.0.2.9');
    await vi.advanceTimersByTimeAsync(10);
    expect(calls).toBe(2);
    reverse.request('192.0.2.10');
    await vi.advanceTimersByTimeAsync(10);
    expect(map.lookup('192.0.2.10')?.name).toBe('evil?]0;title?.test');
    reverse.close();
  });

  it('counts and tells a lookup that failed by a bug, not by DNS; a DNS failure is neither', async () => {
    vi.useFakeTimers();
    const told: unknown[] = [];
    const reverse = new ReverseLookup(new HostNameMap(), {
      resolver: async (address) => {
        if (address === '192.0.2.20') throw Object.assign(new Error('queryPtr ETIMEOUT'), { code: 'ETIMEOUT' });
        throw new TypeError('names.find is not a function');
      },
      onUnexpected: (error) => told.push(error),
    });
    reverse.request('192.0.2.20');
    reverse.request('192.0.2.21');
    await vi.advanceTimersByTimeAsync(10);
    expect(reverse.unexpectedFailures).toBe(1);
    expect(told).toHaveLength(1);
    expect(String(told[0])).toBe('TypeError: names.find is not a function');
    reverse.close();
  });
});
