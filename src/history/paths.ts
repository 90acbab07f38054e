// Where history files live, and making one ready before SQLite opens it: its folder made, and a new
// file created with the mode (and, for the agent, the group) its readers need. SQLite gives the -wal
// and -shm files beside it the same mode and owner.
import { closeSync, constants, fchownSync, lstatSync, mkdirSync, chownSync, openSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { unsafeDirectoryReason } from '../agent/safe-directory.js';
import { expectErrno } from '../errno.js';

export const AGENT_HISTORY_PATH = '/var/lib/flowtop/history.db';

/** $XDG_STATE_HOME/flowtop/history.db, default ~/.local/state/flowtop/history.db. */
export function userHistoryPath(env: NodeJS.ProcessEnv): string {
  const state = env['XDG_STATE_HOME'] && env['XDG_STATE_HOME'].startsWith('/') ? env['XDG_STATE_HOME'] : join(env['HOME'] || homedir(), '.local/state');
  return join(state, 'flowtop', 'history.db');
}

export interface PrepareOptions {
  /** Mode of a new file (0640 for the agent: group flowtop reads it; 0600 for a user's own). */
  fileMode: number;
  /** Mode of a folder made for it. */
  dirMode: number;
  /** Group given to a new file and folder (the agent's flowtop group). */
  gid?: number;
  /** Root: refuse a folder others could swap names in (see safe-directory.ts). */
  asRoot?: boolean;
}

/** Makes the file's folder and the file itself when absent; throws with the reason when it cannot. */
export function prepareHistoryFile(path: string, o: PrepareOptions): void {
  const dir = dirname(path);
  try {
    lstatSync(dir);
  } catch (error) {
    expectErrno(error, ['ENOENT']); // made below; any other failure is the reason it cannot be
    mkdirSync(dir, { recursive: true, mode: o.dirMode });
    if (o.gid !== undefined) chownSync(dir, 0, o.gid);
  }
  if (o.asRoot) {
    const unsafe = unsafeDirectoryReason(dir);
    if (unsafe) throw new Error(`not recording into ${path}: ${unsafe}`);
  }
  let st;
  try {
    st = lstatSync(path);
  } catch (error) {
    expectErrno(error, ['ENOENT']);
    const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, o.fileMode);
    try {
      if (o.gid !== undefined) fchownSync(fd, 0, o.gid);
    } finally {
      closeSync(fd);
    }
    return;
  }
  if (!st.isFile()) throw new Error(`${path} is not a regular file (a ${st.isSymbolicLink() ? 'symbolic link' : 'special file'}); flowtop leaves it alone`);
}
