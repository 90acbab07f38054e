// The store in virtual time: events are reduced in one step per batch window, the screen gets a
// throttled snapshot (slower while a flood arrives), and the clock ticks on its own.
import { describe, expect, test } from 'vitest';
import { NEVER, map, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { createFlowStore, type FlowStore, type StoreOptions } from '../../src/app/store.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import type { FlowSource, SourceEvent } from '../../src/source/types.js';
import { flow } from '../state/fixtures.js';

const scheduler = (): TestScheduler => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

/** A source whose messages arrive at the marble's frames; each letter is a new flow. */
function marbleSource(events$: Observable<string>): FlowSource {
  return {
    id: 'mem',
    events$: events$.pipe(map((id): SourceEvent => ({ source: 'mem', message: { type: 'flow', flow: flow({ id }) } satisfies ExtensionMessage }))),
    status$: NEVER,
    send: () => ({ ok: true }),
    close: () => undefined,
  };
}

/** A store on the test's virtual clock, closed at `closeAt` (its tick would run for ever). */
function storeIn(ts: TestScheduler, events$: Observable<string>, over: Partial<StoreOptions> = {}, closeAt = 5_000): FlowStore {
  const store = createFlowStore({
    sources: [marbleSource(events$)],
    attributorFor: () => new Attributor(createReplayBackend(new Map())),
    clock: { now: () => ts.now() },
    scheduler: ts,
    batchMs: 30,
    snapshotMs: 100,
    floodSnapshotMs: 250,
    floodPerSecond: 3,
    tickMs: 10_000,
    ...over,
  });
  ts.schedule(() => store.close(), closeAt);
  return store;
}

const sizes = (s$: Observable<{ flows: ReadonlyMap<string, unknown> }>) => s$.pipe(map((s) => s.flows.size));

describe('the store in virtual time', () => {
  test('what arrives within the batch window is reduced in one step, 30 ms after the first event', () => {
    const ts = scheduler();
    ts.run(({ hot, expectObservable }) => {
      // a at 0, b at 5, c at 10; d at 41, e at 45
      const store = storeIn(ts, hot('a 4ms b 4ms c 30ms d 3ms e'), { tickMs: 10_000 });
      expectObservable(sizes(store.states$), '200ms !').toBe('30ms x 40ms y', { x: 3, y: 5 });
    });
  });

  test('the screen gets the newest table at most every 100 ms, starting with the current one', () => {
    const ts = scheduler();
    ts.run(({ hot, expectObservable }) => {
      // steps at 30, 71 and 111; the throttle opened by the first lets the newest through at 130
      const store = storeIn(ts, hot('a 40ms b 39ms c'));
      expectObservable(sizes(store.snapshots$), '400ms !').toBe('a 129ms b', { a: 0, b: 3 });
    });
  });

  test('while more than floodPerSecond messages arrived in the last second, frames come every 250 ms; calm again, every 100 ms', () => {
    const ts = scheduler();
    ts.run(({ hot, expectObservable }) => {
      // five flows at once (a flood for a limit of 3), one at 2000 (the last window still counts the
      // flood), one at 3500 (a calm second)
      const store = storeIn(ts, hot('(abcde) 1993ms f 1499ms g'), { tickMs: 100_000 });
      expectObservable(sizes(store.snapshots$), '4000ms !').toBe('a 279ms b 1999ms c 1349ms d', { a: 0, b: 5, c: 6, d: 7 });
    });
  });

  test('the clock ticks every tickMs without any event, each tick a step at the tick plus the batch wait', () => {
    const ts = scheduler();
    ts.run(({ expectObservable }) => {
      const store = storeIn(ts, NEVER, { tickMs: 1_000 });
      expectObservable(store.states$.pipe(map((s) => s.now)), '2500ms !').toBe('1030ms a 999ms b', { a: 1030, b: 2030 });
    });
  });
});
