// Lowers the calling thread's CPU priority: Linux nice is per thread, so a thread whose work can wait
// (hash lookups, history writes) gives way to the ones that cannot (the queue threads holding
// connections, the thread that draws the screen) when the machine is busy.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { expectErrno } from '../errno.js';

/** Best effort: raises this thread's niceness to at least `niceness` on Linux; a failure (not
 *  permitted, no /proc) keeps the inherited priority and changes nothing else. */
export function lowerThisThreadPriority(niceness: number): void {
  if (process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, Math.max(getPriority(tid), niceness));
  } catch (error) {
    expectErrno(error, ['EACCES', 'EPERM', 'ENOENT']);
  }
}
