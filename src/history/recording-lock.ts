// One recorder per history file. Two writers on one file (two TUIs of one user, two agents given
// the same --history) recorded every flow twice and competed for the same row ids. The recorder
// takes flock(2) on `<file>.lock` for as long as it runs; the kernel drops it when the process dies,
// so a killed recorder never leaves the file claimed. Readers take no lock.
import { closeSync, constants, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { tryLockExclusive } from '../native/linux/flock.js';
import { expectSystemError } from '../errno.js';

export interface RecordingHolder {
  pid: number;
  started: number;
  /** What holds it: "flowtop agent" or "flowtop". */
  program: string;
}

export interface RecordingClaim {
  release(): void;
}

/** Another process records into the file: its message names it. */
export class RecordingBusy extends Error {
  constructor(readonly path: string, readonly holder: RecordingHolder | undefined) {
    super(holder
      ? `${path} is being recorded into by another ${holder.program} (pid ${holder.pid}, since ${new Date(holder.started).toISOString()}); one recorder per file`
      : `${path} is being recorded into by another process; one recorder per file`);
  }
}

export function lockPathOf(path: string): string {
  return `${path}.lock`;
}

/** Claims the file for this process, or throws RecordingBusy. */
export function claimRecording(path: string, program: string): RecordingClaim {
  const fd = openSync(lockPathOf(path), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  let taken = false;
  try {
    taken = tryLockExclusive(fd);
    if (!taken) throw new RecordingBusy(path, readHolder(fd));
    const me: RecordingHolder = { pid: process.pid, started: Date.now(), program };
    ftruncateSync(fd, 0);
    writeSync(fd, JSON.stringify(me), 0);
  } finally {
    if (!taken) closeSync(fd);
  }
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}

function readHolder(fd: number): RecordingHolder | undefined {
  try {
    const buf = Buffer.alloc(1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const v = JSON.parse(buf.toString('utf8', 0, n)) as Partial<RecordingHolder>;
    if (!Number.isInteger(v.pid) || !Number.isFinite(v.started) || typeof v.program !== 'string' || !/^[\w -]{1,40}$/.test(v.program)) return undefined;
    return { pid: v.pid!, started: v.started!, program: v.program };
  } catch (error) {
    // half-written, or written by something else: the holder is not named
    if (!(error instanceof SyntaxError)) expectSystemError(error);
    return undefined;
  }
}
