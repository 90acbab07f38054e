// Tokens of processes that connect often, kept with an open pidfd. A pidfd names one process
// instance: while pidfd_send_signal(fd, 0) succeeds, the PID has not been recycled, so the cached
// start time and pidfs inode still hold. The executable is re-checked on every hit (an exec keeps the
// PID and the start time but changes the code): one stat of /proc/PID/exe compared with the cached
// (dev, inode) bytes. Every call goes straight to libc into reused buffers — this runs for each queued
// packet — and builds exactly the token makeLinuxToken builds (same fields, same order of checks).
import { encodeLinuxToken } from '../protocol/tokens.js';
import { SYS, libc, type Libc } from '../native/linux/libc.js';
import { execTag, kernelHasPidfs } from '../native/linux/token.js';

const AT_EMPTY_PATH = 0x1000;
const O_RDONLY_CLOEXEC = 0o2000000;
const EPERM = 1;
/** Bytes of struct stat we compare: st_dev (8) + st_ino (8), at the same offsets on x86_64 and aarch64. */
const EXE_ID_BYTES = 16;
const NO_EXE = Buffer.alloc(EXE_ID_BYTES);

interface Entry {
  pidfd: number;
  token: Buffer;
  tokenText: string;
  startTime: bigint;
  /** /proc/PID/exe, NUL-terminated, made once per process. */
  exePath: Buffer;
  /** st_dev + st_ino of the executable when the token was made (zeros when it could not be read). */
  exeId: Buffer;
}

export class TokenCache {
  private readonly entries = new Map<number, Entry>();
  private readonly c: Libc = libc();
  private readonly stat = Buffer.alloc(256);
  private readonly procStat = Buffer.alloc(1024);
  private readonly emptyPath = Buffer.from('\0');
  private readonly pidfs = kernelHasPidfs();

  constructor(private readonly capacity = 1024) {}

  /** The token of live `pid` and its start time (clock ticks), or undefined when it is gone. */
  get(pid: number): { token: Buffer; tokenText: string; startTime: bigint } | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) return undefined;
    const hit = this.entries.get(pid);
    if (hit) {
      if (this.alive(hit.pidfd) && this.exeId(hit.exePath).equals(hit.exeId)) {
        // LRU order: most recent last
        this.entries.delete(pid);
        this.entries.set(pid, hit);
        return hit;
      }
      this.drop(pid, hit);
    }
    const entry = this.make(pid);
    if (!entry) return undefined;
    this.entries.set(pid, entry);
    if (this.entries.size > this.capacity) {
      const [oldPid, oldest] = this.entries.entries().next().value as [number, Entry];
      this.drop(oldPid, oldest);
    }
    return entry;
  }

  /** pidfd first, then start time, pidfs inode and executable, then the pidfd must still be alive:
   *  all four describe the same process instance even if the PID is reused meanwhile. */
  private make(pid: number): Entry | undefined {
    const c = this.c;
    const pidfd = c.syscall4(SYS.pidfd_open, pid, 0, 0, 0);
    if (pidfd < 0) return undefined;
    const startTime = this.startTime(pid);
    let inode = 0n;
    if (startTime !== undefined && this.pidfs) {
      inode = c.fstatat(pidfd, this.emptyPath, this.stat, AT_EMPTY_PATH) === 0 ? this.stat.readBigUInt64LE(8) : -1n;
    }
    if (startTime === undefined || inode < 0n) {
      c.close(pidfd);
      return undefined;
    }
    const exePath = Buffer.from(`/proc/${pid}/exe\0`);
    const exeId = Buffer.from(this.exeId(exePath));
    const tag = exeId.equals(NO_EXE) ? 0 : execTag(exeId.readBigUInt64LE(0), exeId.readBigUInt64LE(8));
    if (!this.alive(pidfd)) {
      c.close(pidfd);
      return undefined;
    }
    const token = encodeLinuxToken({ pid, startTime, pidfsInode: inode, execTag: tag });
    return { pidfd, token, tokenText: token.toString('base64'), startTime, exePath, exeId };
  }

  /** pidfd_send_signal(fd, 0): success, or EPERM (found but not ours to signal), means alive. */
  private alive(pidfd: number): boolean {
    return this.c.syscall4(SYS.pidfd_send_signal, pidfd, 0, 0, 0) === 0 || this.c.errno() === EPERM;
  }

  /** st_dev + st_ino of the executable (a view of the shared stat buffer), or zeros when unreadable. */
  private exeId(exePath: Buffer): Buffer {
    if (this.c.fstatat(-100 /* AT_FDCWD */, exePath, this.stat, 0) !== 0) return NO_EXE;
    return this.stat.subarray(0, EXE_ID_BYTES);
  }

  /** Field 22 of /proc/PID/stat (clock ticks since boot), read and parsed from bytes. */
  private startTime(pid: number): bigint | undefined {
    const c = this.c;
    const fd = c.open(Buffer.from(`/proc/${pid}/stat\0`), O_RDONLY_CLOEXEC);
    if (fd < 0) return undefined;
    const b = this.procStat;
    let n = 0;
    try {
      while (n < b.length) {
        const r = c.read(fd, n === 0 ? b : b.subarray(n), b.length - n);
        if (r <= 0) break;
        n += r;
        // the kernel writes the whole line in one read: a final newline means there is no more
        if (b[n - 1] === 0x0a) break;
      }
    } finally {
      c.close(fd);
    }
    return parseStartTime(b, n, pid);
  }

  private drop(pid: number, entry: Entry): void {
    this.entries.delete(pid);
    this.c.close(entry.pidfd);
  }

  clear(): void {
    for (const [pid, e] of this.entries) this.drop(pid, e);
  }
}

/** The start time in a /proc/PID/stat line of `pid` ("pid (comm) state ppid … starttime …"), or
 *  undefined when the line is not that shape. comm may hold spaces and parentheses: the fields start
 *  after the last ')'. */
export function parseStartTime(b: Buffer, n: number, pid: number): bigint | undefined {
  let at = 0;
  let head = 0;
  while (at < n && b[at]! >= 0x30 && b[at]! <= 0x39) head = head * 10 + (b[at++]! - 0x30);
  if (at === 0 || head !== pid || b[at] !== 0x20 || b[at + 1] !== 0x28) return undefined;
  let close = n - 1;
  while (close > at && b[close] !== 0x29) close--;
  if (close <= at || b[close + 1] !== 0x20) return undefined;
  // field 3 starts at close + 2; field 22 follows 19 more spaces
  let i = close + 2;
  for (let spaces = 0; spaces < 19; i++) {
    if (i >= n) return undefined;
    if (b[i] === 0x20) spaces++;
  }
  let value = 0;
  const start = i;
  while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) value = value * 10 + (b[i++]! - 0x30);
  if (i === start || (i < n && b[i] !== 0x20 && b[i] !== 0x0a) || !Number.isSafeInteger(value)) return undefined;
  return BigInt(value);
}
