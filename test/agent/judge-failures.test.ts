// A packet the queue loop fails to judge gets the default verdict, but must not pass for a default
// decision: it is counted on its own and logged with the error, rate-limited so a bug hit by every
// packet cannot flood the log.
import { describe, expect, it } from 'vitest';
import { JudgeFailures } from '../../src/agent/judge-failures.js';
import { COUNTER, COUNTER_SLOTS } from '../../src/agent/types.js';

describe('a failure to judge a queued packet', () => {
  it('is counted as a failure (not as a default decision) and logged with the error', () => {
    const counters = new BigInt64Array(new SharedArrayBuffer(8 * COUNTER_SLOTS));
    const lines: string[] = [];
    const failures = new JudgeFailures(counters, 7, 'block', (l) => lines.push(l));
    failures.failed(new TypeError("Cannot read properties of undefined (reading 'port')"));
    expect(counters[COUNTER.judgeErrors]).toBe(1n);
    expect(counters[COUNTER.default]).toBe(0n);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^queue 7: judging a packet failed, so it was given the default \(block\): TypeError: Cannot read properties of undefined \(reading 'port'\) \(at /);
  });

  it('is logged at most once per interval, saying how many it left unsaid, while every one is counted', () => {
    const counters = new BigInt64Array(new SharedArrayBuffer(8 * COUNTER_SLOTS));
    const lines: string[] = [];
    let now = 1_000_000;
    const failures = new JudgeFailures(counters, 0, 'allow', (l) => lines.push(l), 10_000, () => now);
    for (let i = 0; i < 500; i++) {
      failures.failed(new Error(`boom ${i}`));
      now += 10; // 500 failures over 5 s
    }
    expect(counters[COUNTER.judgeErrors]).toBe(500n);
    expect(lines).toHaveLength(1);
    now += 6_000;
    failures.failed('not an Error');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/: not an Error \(and 499 more like it in the last 11 s\)$/);
    expect(counters[COUNTER.judgeErrors]).toBe(501n);
  });
});
