// The reconnect schedule in virtual time: delays double up to the cap, the count starts over after a
// success, completion is never retried.
import { describe, expect, test } from 'vitest';
import { TestScheduler } from 'rxjs/testing';
import { backoffDelay, retryWithBackoff, type RetryWait } from '../../src/source/backoff.js';

const policy = { initialMs: 10, maxMs: 40, factor: 2 };
const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('backoffDelay', () => {
  test('doubles from the initial delay and stops at the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy))).toEqual([10, 20, 40, 40, 40, 40]);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
  });
});

describe('retryWithBackoff', () => {
  test('resubscribes after 10, 20, 40, 40 ms, reporting each wait', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable, expectSubscriptions, flush }) => {
      const waits: RetryWait[] = [];
      const source = cold('--#', undefined, new Error('refused'));
      const result = source.pipe(retryWithBackoff(policy, ts, (w) => waits.push(w)));
      // Each attempt fails 2 ms after it starts; the waits are 10, 20, 40, 40.
      expectObservable(result, '150ms !').toBe('');
      expectSubscriptions(source.subscriptions).toBe(['^-!', '12ms ^-!', '34ms ^-!', '76ms ^-!', '118ms ^-!']);
      flush();
      expect(waits.map((w) => [w.retry, w.delayMs, w.retryAt])).toEqual([[1, 10, 12], [2, 20, 34], [3, 40, 76], [4, 40, 118], [5, 40, 160]]);
    });
  });

  test('a source that emitted before failing starts over at the shortest delay', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable, expectSubscriptions, flush }) => {
      const waits: RetryWait[] = [];
      const source = cold('-a-#');
      expectObservable(source.pipe(retryWithBackoff(policy, ts, (w) => waits.push(w))), '30ms !').toBe('-a 12ms a 12ms a');
      expectSubscriptions(source.subscriptions).toBe(['^--!', '13ms ^--!', '26ms ^--!']);
      flush();
      expect(waits.map((w) => w.delayMs)).toEqual([10, 10, 10]);
    });
  });

  test('completion is not retried', () => {
    const ts = scheduler();
    ts.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('--|');
      expectObservable(source.pipe(retryWithBackoff(policy, ts))).toBe('--|');
      expectSubscriptions(source.subscriptions).toBe('^-!');
    });
  });
});
