// Young-generation collections of 6–16 ms landing inside frames made the slowest frames with 100,000
// flows: each frame allocates on top of what the reducer allocated since the last one, and whichever
// allocation fills the nursery pays for the collection. Collecting the young generation right after a
// frame has been written, between frames, lets the next frame start with an empty nursery, so it
// rarely has to collect itself. (Browsers schedule collections in idle time for the same reason.)
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' }) => void;

let collect: Collect | null | undefined;
let scheduled = false;

function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    // gc() is only handed to contexts created after the flag is set: make one and keep its gc
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    collect = typeof gc === 'function' ? (gc as Collect) : null;
  } catch (error) {
    // the flag did not take (a runtime that refuses it): no gc in the new context, frames collect as
    // before. The error comes from the other context, so it is told by name, not by instanceof.
    if ((error as { name?: unknown } | null)?.name !== 'ReferenceError') throw error;
    collect = null;
  }
  return collect;
}

/** Asks for one young-generation collection once the current task (the frame) is over. Calls in the
 *  same turn share it. */
export function collectYoungAfterFrame(): void {
  if (scheduled) return;
  const gc = collector();
  if (!gc) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    gc({ type: 'minor' });
  });
}
