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
const observed = (): Promise<void> => new Promise((r) => setTimeout(r, 30)); // gc entries arrive async

describe('young-generation collection between frames', () => {
  it('runs once after the frame that asked, however often it asked', async () => {
    const gcs = watchMinorCollections();
    try {
      await observed();
      const before = gcs.count();
      for (let i = 0; i < 5; i++) collectYoungAfterFrame(); // one frame, asking from several places
      await observed();
      expect(gcs.count() - before).toBe(1);
      // and again after the next frame
      collectYoungAfterFrame();
      await turn();
      await observed();
      expect(gcs.count() - before).toBe(2);
    } finally {
      gcs.stop();
    }
  });
});
