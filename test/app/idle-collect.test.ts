// After a frame, one young-generation collection runs once the frame's task is over, however many
// times the frame asked for it.
import { describe, expect, it } from 'vitest';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { collectYoungAfterFrame } from '../../src/app/idle-collect.js';

function watchMinorCollections(): { count: () => number; stop: () => void } {
  let n = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) n++;
  });
  observer.observe({ entryTypes: ['gc'] });
  return { count: () => n, stop: () => observer.disconnect() };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
/** GC entries arrive asynchronously: wait until `count` reaches `want` (or 2 s pass), then a little
 *  longer so an extra collection would be seen too. */
async function observed(count: () => number, want: number): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (count() < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 30));
}

describe('young-generation collection between frames', () => {
  it('runs once after the frame that asked, however often it asked', async () => {
    const gcs = watchMinorCollections();
    try {
      await observed(gcs.count, 0);
      const before = gcs.count();
      for (let i = 0; i < 5; i++) collectYoungAfterFrame(); // one frame, asking from several places
      await observed(gcs.count, before + 1);
      expect(gcs.count() - before).toBe(1);
      // and again after the next frame
      collectYoungAfterFrame();
      await turn();
      await observed(gcs.count, before + 2);
      expect(gcs.count() - before).toBe(2);
    } finally {
      gcs.stop();
    }
  });
});
