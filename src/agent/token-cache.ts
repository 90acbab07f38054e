// Tokens of processes that connect often, kept with an open pidfd. A pidfd names one process
// instance: while pidfd_send_signal(fd, 0) succeeds, the PID has not been recycled, so the cached
// start time and pidfs inode still hold. The executable is re-checked (exec tag) because an exec keeps
// the PID and the start time but changes the code. A miss costs one makeLinuxToken (~30 µs); a hit ~5 µs.
import { libc } from '../native/linux/libc.js';
import { decodeLinuxToken } from '../protocol/tokens.js';
import { makeLinuxToken, pidfdAlive, pidfdOpen, readExecTag } from '../native/linux/token.js';

interface Entry {
  pidfd: number;
  token: Buffer;
  startTime: bigint;
  execTag: number;
}

export class TokenCache {
  private readonly entries = new Map<number, Entry>();

  constructor(private readonly capacity = 1024) {}

  /** The token of live `pid` and its start time (clock ticks), or undefined when it is gone. */
  get(pid: number): { token: Buffer; startTime: bigint } | undefined {
    const hit = this.entries.get(pid);
    if (hit) {
      if (pidfdAlive(hit.pidfd) === 0 && readExecTag(pid) === hit.execTag) {
        // LRU order: most recent last
        this.entries.delete(pid);
        this.entries.set(pid, hit);
        return hit;
      }
      this.drop(pid, hit);
    }
    const pidfd = pidfdOpen(pid);
    if (pidfd < 0) return undefined;
    const token = makeLinuxToken(pid);
    const decoded = token ? decodeLinuxToken(token) : undefined;
    if (!token || !decoded || pidfdAlive(pidfd) !== 0) {
      libc().close(pidfd);
      return undefined;
    }
    const entry: Entry = { pidfd, token, startTime: decoded.startTime, execTag: token.readUInt32LE(4) };
    this.entries.set(pid, entry);
    if (this.entries.size > this.capacity) {
      const [oldPid, oldest] = this.entries.entries().next().value as [number, Entry];
      this.drop(oldPid, oldest);
    }
    return entry;
  }

  private drop(pid: number, entry: Entry): void {
    this.entries.delete(pid);
    libc().close(entry.pidfd);
  }

  clear(): void {
    for (const [pid, e] of this.entries) this.drop(pid, e);
  }
}
