// Keeps a queue worker on the CPUs whose packets it receives. With --queue-cpu-fanout the kernel puts a
// packet handled on CPU c into queue first + (c mod count): worker i then runs where its packets (and
// the handshake its verdict releases) already are, instead of bouncing them to the other core.
import { libc } from '../native/linux/libc.js';

const MASK_BYTES = 128; // 1024 CPUs

/** Restricts the calling thread to the allowed CPUs c with c mod count = index. Returns the CPUs kept,
 *  or undefined when nothing changed (a single queue, no such CPU allowed, or the call failed). */
export function pinToQueueCpus(index: number, count: number): number[] | undefined {
  if (count <= 1) return undefined;
  const c = libc();
  const allowed = Buffer.alloc(MASK_BYTES);
  if (c.schedGetaffinity(0, allowed) !== 0) return undefined;
  const mask = Buffer.alloc(MASK_BYTES);
  const kept: number[] = [];
  for (let cpu = 0; cpu < MASK_BYTES * 8; cpu++) {
    const bit = 1 << (cpu & 7);
    if ((allowed[cpu >> 3]! & bit) !== 0 && cpu % count === index) {
      mask[cpu >> 3] = mask[cpu >> 3]! | bit;
      kept.push(cpu);
    }
  }
  if (kept.length === 0) return undefined;
  return c.schedSetaffinity(0, mask) === 0 ? kept : undefined;
}
