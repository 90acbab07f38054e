// flock(2) without blocking: the caller polls, so a lock held elsewhere never stalls the event loop.
import { constants } from 'node:os';
import { libc } from './libc.js';

const LOCK_EX = 2;
const LOCK_NB = 4;

/** Takes an exclusive lock on an open descriptor: true when taken, false when another open file
 *  description holds it. Throws on any other error. */
export function tryLockExclusive(fd: number): boolean {
  const c = libc();
  if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = c.errno();
  if (errno === constants.errno.EWOULDBLOCK) return false;
  throw new Error(`flock failed (errno ${errno})`);
}
