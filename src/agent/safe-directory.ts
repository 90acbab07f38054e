// Whether a directory is safe for root to create files in by name: nobody but root can add, rename or
// remove entries in it or in any directory above it — or, where others can (/tmp), the sticky bit stops
// them touching entries root owns. Otherwise a user could swap a name for a symlink between two of
// root's calls (create, chmod, chown, rename) and turn them on a file of root's choosing.
import { lstatSync, realpathSync } from 'node:fs';
import { dirname, sep } from 'node:path';

const STICKY = 0o1000;

/** Why `dir` is unsafe for root's files, or undefined when it is safe. `dir` must exist. */
export function unsafeDirectoryReason(dir: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (error) {
    return `cannot resolve ${dir}: ${(error as Error).message}`;
  }
  const chain: string[] = [];
  for (let d = real; ; d = dirname(d)) {
    chain.unshift(d);
    if (d === dirname(d)) break;
  }
  for (const d of chain) {
    const st = lstatSync(d);
    if (!st.isDirectory()) return `${d} is not a directory`;
    if (st.uid !== 0) return `${d} belongs to uid ${st.uid}, not root: that user could swap the names in it`;
    const othersWrite = (st.mode & 0o002) !== 0 || ((st.mode & 0o020) !== 0 && st.gid !== 0);
    if (othersWrite && (st.mode & STICKY) === 0) {
      return `${d} is writable by others and not sticky (mode ${(st.mode & 0o7777).toString(8)}): anyone could swap the names in it`;
    }
  }
  return undefined;
}

/** `path` split into its (real) directory and its own name, for messages and checks. */
export function inRealDirectory(path: string): { dir: string; name: string } {
  const name = path.slice(path.lastIndexOf(sep) + 1);
  return { dir: realpathSync(dirname(path)), name };
}
