// A process-wide V8 setting for a process that holds one large flow table (the TUI, `list --follow`).
import { setFlagsFromString } from 'node:v8';

/** How far V8 lets the old generation grow past what survived its last full collection, in
 *  percent. Left to itself, V8 lets it grow up to 4x in a process with a large heap limit: with
 *  ~85 MB of live heap for 125,000 flows at 10,000 events/s, RSS passed 250 MB within 10 s, the
 *  difference being garbage not yet collected (and the limit set after a collection during the
 *  initial load, at 4x of what was live then). Measured (bench/tui): 75% keeps RSS at 230-234 MB
 *  at the end of that load (CPU 24-33%); 50% at 211-229 MB, but its more frequent full collections
 *  put their ~15 ms pauses into a frame often enough to raise the frame p99 by a few ms. V8 reads
 *  this at every full collection, so it can be set after start. */
export const HEAP_GROWING_PERCENT = 75;
let heapPolicySet = false;

/** Sets the heap growth above for this process (once). */
export function limitHeapGrowth(): void {
  if (heapPolicySet) return;
  heapPolicySet = true;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

