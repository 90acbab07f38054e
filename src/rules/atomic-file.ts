// Replace a file so that a reader sees either the old bytes or the new, never a mix, even if the
// machine or the writer dies at any point: write a temp file in the same directory, fsync it, rename it
// over the target (atomic on one filesystem), then fsync the directory so the rename itself is durable.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { expectErrno } from '../errno.js';

export interface AtomicWriteOptions {
  /** File mode for a new file; an existing file keeps its mode. */
  mode?: number;
  /** Called after the temp file is written and synced, before the rename (tests crash here). */
  beforeRename?: (tempPath: string) => void;
}

const TEMP_SUFFIX = '.tmp';

function tempPrefix(path: string): string {
  return `.${basename(path)}.`;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  let mode = options.mode ?? 0o644;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const temp = join(dir, `${tempPrefix(path)}${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    options.beforeRename?.(temp);
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems cannot fsync a directory; the rename is still atomic there.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw error;
  } finally {
    await handle.close();
  }
}

/** Removes temp files a killed writer left beside `path` (their writer process no longer exists). */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = tempPrefix(path);
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    expectErrno(error, ['ENOENT', 'ENOTDIR', 'EACCES']); // no folder we may list: nothing left there
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid) continue; // one of ours, possibly being written right now
    await unlink(join(dir, name)).then(() => removed.push(name), () => undefined);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
