// Fallback owner lookup when the BPF recorder cannot be used: socket inode → PID from /proc/PID/fd.
// A scan is expensive (µs per descriptor), so every scan indexes all the socket inodes it passes, and
// a miss scans the processes of the socket's UID first, the most recently started first.
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { GONE_OR_DENIED, expectErrno } from '../errno.js';

export class InodeIndex {
  private readonly byInode = new Map<number, number>();
  private readonly limit: number;

  constructor(limit = 200_000) {
    this.limit = limit;
  }

  /** The PID holding this socket inode, or undefined. `uid` narrows the scan when known. */
  find(inode: number, uid?: number): number | undefined {
    const known = this.byInode.get(inode);
    if (known !== undefined && this.holds(known, inode)) return known;
    this.byInode.delete(inode);
    const pids = this.candidates(uid);
    for (const pid of pids) {
      if (this.scan(pid, inode)) return pid;
    }
    return undefined;
  }

  private holds(pid: number, inode: number): boolean {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return true;
      }
    } catch (error) {
      expectErrno(error, GONE_OR_DENIED); // exited, or closed the descriptor meanwhile
    }
    return false;
  }

  private candidates(uid?: number): number[] {
    const all: Array<{ pid: number; mine: boolean }> = [];
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid <= 0) continue;
      let mine = true;
      if (uid !== undefined) {
        try {
          mine = statSync(`/proc/${pid}`).uid === uid;
        } catch (error) {
          expectErrno(error, GONE_OR_DENIED);
          continue;
        }
      }
      all.push({ pid, mine });
    }
    // the socket's user first; higher PIDs (started more recently, in the common case) first
    all.sort((a, b) => (a.mine === b.mine ? b.pid - a.pid : a.mine ? -1 : 1));
    return all.map((x) => x.pid);
  }

  private scan(pid: number, wanted: number): boolean {
    let found = false;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      expectErrno(error, GONE_OR_DENIED);
      return false;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED);
        continue;
      }
      if (!link.startsWith('socket:[')) continue;
      const inode = Number(link.slice(8, -1));
      if (this.byInode.size < this.limit) this.byInode.set(inode, pid);
      if (inode === wanted) found = true;
    }
    return found;
  }
}
