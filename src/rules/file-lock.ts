// An exclusive lock on a rules file, so a read-modify-write by one process never overwrites what
// another wrote in between (two `flowtop rules add` loops on one file lost rules, each still saying
// "added"). The lock is flock(2) on `.<name>.lock` beside the file: the kernel drops it when its holder
// dies, so a killed writer never leaves it held. The holder removes the file before letting go; a
// waiter that then gets the lock on the removed file notices (the name no longer leads to it) and
// tries again, so no two processes ever hold "the" lock at once.
import { closeSync, constants, fstatSync, mkdirSync, ftruncateSync, lstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { expectErrno } from '../errno.js';

/** Who holds a lock, as written into the lock file. */
export interface LockHolder {
  pid: number;
  /** 'agent': held for the agent's whole run; 'edit': one change by `flowtop rules`. */
  role: 'agent' | 'edit';
}

export interface FileLock {
  release(): void;
}

export function lockPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.lock`);
}

type TryLock = (fd: number) => boolean;

/** The platform's flock, or undefined where flowtop has none (macOS: no agent runs there). */
async function loadTryLock(): Promise<TryLock | undefined> {
  if (process.platform !== 'linux') return undefined;
  return (await import('../native/linux/flock.js')).tryLockExclusive;
}

function readHolder(lockPath: string): LockHolder | undefined {
  try {
    const fd = openSync(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(256);
      const n = readSync(fd, buf, 0, buf.length, 0);
      const v = JSON.parse(buf.toString('utf8', 0, n)) as Partial<LockHolder>;
      return Number.isInteger(v.pid) && (v.role === 'agent' || v.role === 'edit') ? { pid: v.pid!, role: v.role } : undefined;
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    // no lock file, or one being written: no holder named
    if (!(error instanceof SyntaxError)) expectErrno(error, ['ENOENT', 'EACCES']);
    return undefined;
  }
}

function describeHolder(path: string, holder: LockHolder | undefined): UserError {
  if (holder?.role === 'agent') {
    return new UserError(`the rules file ${path} belongs to a running agent (pid ${holder.pid}) while it runs`, 'change the rules through the agent (`flowtop rules` without --rules asks it), or stop it first');
  }
  return new UserError(`the rules file ${path} stayed locked by another process${holder ? ` (pid ${holder.pid})` : ''}`, 'try again when it has finished');
}

/** Takes the lock, waiting up to `waitMs` while another `flowtop rules` holds it; a running agent's
 *  lock is reported at once (it holds it until it stops). */
export async function lockRulesFile(path: string, role: LockHolder['role'], waitMs = 10_000): Promise<FileLock> {
  const tryLock = await loadTryLock();
  if (!tryLock) return { release: () => {} };
  const lockPath = lockPathFor(path);
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new UserError(`cannot write the rules file ${path}: ${(error as Error).message}`, 'check the permissions of its folder; the previous file is unchanged');
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    let fd: number;
    try {
      fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    } catch (error) {
      throw new UserError(`cannot lock the rules file ${path} (${lockPath}: ${(error as Error).message})`, 'check the permissions of its folder, or run as root');
    }
    let locked = false;
    try {
      locked = tryLock(fd);
      if (locked) {
        const held = fstatSync(fd);
        const named = lstatSync(lockPath, { throwIfNoEntry: false });
        if (named && named.ino === held.ino && named.dev === held.dev) {
          ftruncateSync(fd, 0);
          writeSync(fd, JSON.stringify({ pid: process.pid, role } satisfies LockHolder), 0);
          return {
            release: () => {
              // removed while still held (see the top of the file), then let go
              try {
                unlinkSync(lockPath);
              } catch (error) {
                expectErrno(error, ['ENOENT']); // already gone
              }
              closeSync(fd);
            },
          };
        }
      }
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    closeSync(fd);
    if (!locked) {
      const holder = readHolder(lockPath);
      if (holder?.role === 'agent' || Date.now() > deadline) throw describeHolder(path, holder);
    }
    await new Promise((resolve) => setTimeout(resolve, locked ? 0 : 10));
  }
}
