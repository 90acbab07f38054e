// Where cgroup v2 is: the mounted hierarchy, or a private mount of it when this mount namespace shows
// none. The socket recorder attaches its programs there.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectErrno } from '../../errno.js';

class MountFailed extends Error {}

/** Where cgroup v2 is mounted (first `cgroup2` line of /proc/self/mounts), or undefined. */
export function findCgroup2Root(mounts = readFileSync('/proc/self/mounts', 'utf8')): string | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  return undefined;
}

/** A cgroup v2 root to attach to: the mounted one, or — when this mount namespace shows none (e.g.
 *  under `ip netns exec`, which remounts /sys) — a private mount of the same hierarchy in a temporary
 *  directory, removed by `release`. */
export function cgroup2Root(): { path: string; release: () => void; private: boolean } | undefined {
  const mounted = findCgroup2Root();
  if (mounted) return { path: mounted, release: () => {}, private: false };
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-cgroup2-'));
    const r = spawnSync('mount', ['-t', 'cgroup2', 'cgroup2', dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new MountFailed(r.stderr);
    const path = dir;
    return {
      path,
      private: true,
      release: () => {
        spawnSync('umount', ['-l', path]);
        try {
          rmdirSync(path);
        } catch (error) {
          expectErrno(error, ['EBUSY', 'ENOENT']); // still mounted (lazily unmounted), or gone
        }
      },
    };
  } catch (error) {
    // No mount here (not permitted, or no cgroup2): recording is off and the agent says so. Only
    // failures of mkdtemp and mount get here; the folder, if made, is empty and not mounted.
    if (dir) rmdirSync(dir);
    if (!(error instanceof MountFailed)) expectErrno(error, ['EACCES', 'EPERM', 'EROFS', 'ENOSPC']);
    return undefined;
  }
}
