// A lock file that names its holder: flock(2) on a file made 0600 (never through a symlink), with the
// holder's description written into it as JSON, so whoever finds it taken can say who has it. The
// kernel drops the lock when the holder dies; a file left behind is simply taken again.
import { closeSync, constants, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { tryLockExclusive } from './flock.js';
import { expectSystemError } from '../../errno.js';

/** Taken: the open descriptor that holds the lock (close it to let go), `holder` written into the
 *  file. Held elsewhere: what that holder wrote, parsed (undefined when it is not JSON). */
export function claimLockFile(path: string, holder: object): { fd: number } | { heldBy: unknown } {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    if (!tryLockExclusive(fd)) {
      const heldBy = readJson(fd);
      closeSync(fd);
      return { heldBy };
    }
    ftruncateSync(fd, 0);
    writeSync(fd, JSON.stringify(holder), 0);
    return { fd };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

function readJson(fd: number): unknown {
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return JSON.parse(buf.toString('utf8', 0, n)) as unknown;
  } catch (error) {
    // half-written, or written by something else: the holder is not named
    if (!(error instanceof SyntaxError)) expectSystemError(error);
    return undefined;
  }
}
