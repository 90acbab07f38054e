// `flowtop agent --cgroup DIR` must name a cgroup v2 directory: the socket recorder attaches there.
// Anything else (a cgroup v1 hierarchy, the tmpfs that holds them on a hybrid system, a typo) used to
// surface only as "BPF unavailable (bpf(PROG_ATTACH): EBADF)" and a quiet fall-back to /proc scans.
// Checked before anything is installed, from /proc/self/mountinfo: the file system the directory is on.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { UserError } from '../errors.js';

export interface Mount {
  mountPoint: string;
  fsType: string;
}

/** mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal). */
function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The mounts of /proc/self/mountinfo, in its order; malformed lines are skipped. */
export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    // id parent major:minor root mount-point options [optional fields…] - fstype source super-options
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    const mountPoint = fields[4];
    const fsType = fields[separator + 1];
    if (separator < 0 || !mountPoint?.startsWith('/') || !fsType) continue;
    mounts.push({ mountPoint: unescapeMountPath(mountPoint), fsType });
  }
  return mounts;
}

/** The mount that holds `path` (an absolute, resolved path): the longest mount point above it; of equal
 *  ones, the last listed (it is mounted over the others). */
export function mountOf(path: string, mounts: Mount[]): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(`${m.mountPoint}/`);
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** Why `dir` is not a cgroup v2 directory, or undefined when it is. */
export function cgroup2DirectoryProblem(dir: string, mountinfo: string): string | undefined {
  const mounts = parseMountinfo(mountinfo);
  const cgroup2 = mounts.filter((m) => m.fsType === 'cgroup2').map((m) => m.mountPoint);
  const where = cgroup2.length > 0 ? `cgroup2 is mounted at ${[...new Set(cgroup2)].join(', ')}` : 'cgroup2 is not mounted here';
  let resolved: string;
  try {
    resolved = realpathSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `${dir} is not a cgroup v2 directory (${code === 'ENOENT' ? 'it does not exist' : `it cannot be read: ${code}`}; ${where})`;
  }
  if (!statSync(resolved).isDirectory()) return `${dir} is not a cgroup v2 directory (it is not a directory; ${where})`;
  const fsType = mountOf(resolved, mounts)?.fsType;
  if (fsType === 'cgroup2') return undefined;
  const on = fsType === 'cgroup' ? 'it is on a cgroup v1 hierarchy' : fsType ? `it is on a file system of type ${fsType}` : 'no mount holding it is listed';
  return `${dir} is not a cgroup v2 directory (${on}; ${where})`;
}

/** Throws a UserError naming the problem and where cgroup v2 is, unless `dir` is a cgroup v2 directory. */
export function requireCgroup2Directory(dir: string): void {
  const problem = cgroup2DirectoryProblem(dir, readFileSync('/proc/self/mountinfo', 'utf8'));
  if (problem) throw new UserError(`agent: --cgroup ${problem}`, 'pass a directory under the cgroup2 mount (e.g. mkdir one there), or leave out --cgroup to use its root');
}
