// However large the backlog, the store digests it in slices and the event loop keeps turning: a
// flood must never leave the TUI deaf to keys and signals while it is reduced.
import { describe, expect, it } from 'vitest';
import { createFlowStore } from '../../src/app/store.js';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { flow, hello } from '../state/fixtures.js';
import { memorySource } from '../ui/helpers/memory-source.js';

describe('the store under a backlog', () => {
  it('applies 300,000 queued messages without holding the event loop for long', async () => {
    const src = memorySource();
    const store = createFlowStore({
      sources: [src],
      attributorFor: () => new Attributor(createReplayBackend(new Map())),
      clock: { now: () => Date.now() },
      table: { maxFlows: 400_000 },
      batchMs: 5,
    });
    const sub = store.states$.subscribe(() => undefined);
    try {
      src.push(hello());
      // All at once, as a burst read from the socket would deliver them before the first step.
      for (let i = 0; i < 300_000; i++) src.push({ type: 'flow', flow: flow({ id: `b${i}`, pid: 1000 + (i % 500), ownerError: 'test', time: Date.now() }) });
      // Timer callbacks that ran while the backlog was part-way applied: each is a turn of the event
      // loop in which a key or a signal would have been handled. Counted, not timed, so a loaded
      // machine cannot fail it; one step for the whole backlog leaves none.
      let turnsDuring = 0;
      const turns = setInterval(() => {
        const size = store.current().flows.size;
        if (size > 0 && size < 300_000) turnsDuring++;
      }, 1);
      const deadline = Date.now() + 60_000;
      while (store.current().flows.size < 300_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      clearInterval(turns);
      expect(store.current().flows.size).toBe(300_000);
      expect(turnsDuring).toBeGreaterThanOrEqual(5);
    } finally {
      sub.unsubscribe();
      store.close();
    }
  }, 90_000);
});

describe('an answer someone waits for', () => {
  it('is applied at the next turn, not after the batch wait; the stream still waits for its batch', async () => {
    const { TestScheduler } = await import('rxjs/testing');
    const { map } = await import('rxjs');
    const { reduceInSlices } = await import('../../src/app/sliced-reducer.js');
    const { initialTable } = await import('../../src/state/reducer.js');
    type Action = import('../../src/state/reducer.js').TableAction;
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      const end = (id: string, reply?: true): Action => ({ type: 'events', events: [{ source: 's', message: { type: 'end', id, time: 1 }, ...(reply ? { reply } : {}) }] });
      // a: stream event at 0; b: a reply at 5; c: stream event at 50.
      const actions$ = cold<Action>('a 4ms b 44ms c', { a: end('a'), b: end('b', true), c: end('c') });
      const steps$ = reduceInSlices(actions$, initialTable(), { batchMs: 30, sliceMs: 50, chunk: 100, now: () => 0, scheduler, urgent: (x) => x.type === 'events' && x.events.some((e) => e.reply === true) });
      // The reply takes the waiting stream event with it at 5; the next stream event waits 30 ms (50 → 80).
      expectObservable(steps$.pipe(map(() => 'x'))).toBe('5ms x 74ms x');
    });
  });
});
