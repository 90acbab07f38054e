// One recorder per history file. Two writers on one file (two TUIs of one user, two agents given
// the same --history) recorded every flow twice and competed for the same row ids. The recorder
// takes flock(2) on `<file>.lock` for as long as it runs; the kernel drops it when the process dies,
// so a killed recorder never leaves the file claimed. Readers take no lock.
import { closeSync } from 'node:fs';
import { claimLockFile } from '../native/linux/lock-file.js';

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
  const me: RecordingHolder = { pid: process.pid, started: Date.now(), program };
  const claim = claimLockFile(lockPathOf(path), me);
  if ('heldBy' in claim) throw new RecordingBusy(path, asHolder(claim.heldBy));
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      closeSync(claim.fd);
    },
  };
}

/** The recorder a lock file names; undefined for a half-written or foreign one. */
function asHolder(heldBy: unknown): RecordingHolder | undefined {
  if (typeof heldBy !== 'object' || heldBy === null) return undefined;
  const v = heldBy as Partial<RecordingHolder>;
  if (!Number.isInteger(v.pid) || !Number.isFinite(v.started) || typeof v.program !== 'string' || !/^[\w -]{1,40}$/.test(v.program)) return undefined;
  return { pid: v.pid!, started: v.started!, program: v.program };
}
