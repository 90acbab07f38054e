// Tokens of processes that connect often, kept with an open pidfd. A pidfd names one process
// instance: while pidfd_send_signal(fd, 0) succeeds, the PID has not been recycled, so the cached
// start time and pidfs inode still hold. The executable is re-checked on every hit (an exec keeps the
// PID and the start time but changes the code): one stat of /proc/PID/exe compared with the cached
// (dev, inode) bytes. Every call goes straight to libc into reused buffers — this runs for each queued
// packet — and builds exactly the token makeLinuxToken builds (same fields, same order of checks).
// When the BPF record names the process instance (start time, exec counter and pidfs inode read from
// task_struct at connect time), a hit costs no system call at all and a new process skips /proc; a new
// process running an executable already identified (every fork of a server, say) costs none either.
// Identity rules need the executable's file key: for an identified executable, one fstat of the agent's own
// O_PATH descriptor of it gives that key, instead of a path walk through /proc/PID/exe.
// A flow's program is the one that ran when it connected: the record names that file (device + inode,
// read in the kernel at connect). The token's exec tag is that file's, whatever /proc/PID/exe says by the
// time the packet is judged — an exec in between must not lend the flow the new program's identity (the
// resolver then finds another program running and refuses). Where no record names the file (no BTF, an
// owner found by a /proc scan) nothing proves which program connected: the tag is 0, "not known", and the
// flow can never be `secure` or match an identity rule.
import { encodeLinuxToken } from '../protocol/tokens.js';
import { SYS, libc, type Libc } from '../native/linux/libc.js';
import { execTag, kernelHasPidfs } from '../native/linux/token.js';
import { formatFileKey } from '../native/linux/hash.js';
import type { OwnerRecord } from '../native/linux/bpf.js';

const AT_EMPTY_PATH = 0x1000;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_PATH_CLOEXEC = 0o10000000 | 0o2000000;
const EPERM = 1;
/** CLOCK_BOOTTIME ns per /proc/PID/stat clock tick (USER_HZ 100 on every architecture we run on). */
const NS_PER_TICK = 10_000_000n;
/** Bytes of struct stat we compare: st_dev (8) + st_ino (8), at the same offsets on x86_64 and aarch64. */
const EXE_ID_BYTES = 16;
const NO_EXE = Buffer.alloc(EXE_ID_BYTES);

export interface CachedToken {
  /** -1 when the token was made from a record alone (no PID lookup was needed). */
  pidfd: number;
  token: Buffer;
  tokenText: string;
  startTime: bigint;
  /** /proc/PID/exe, NUL-terminated, made once per process. */
  exePath: Buffer;
  /** st_dev + st_ino of the executable when the token was made (zeros when it could not be read). */
  exeId: Buffer;
  pidfsInode: bigint;
  /** task_struct.self_exec_id from the record the entry was made for; -1n when made from /proc alone. */
  execId: bigint;
}

/** Why a record's process could not be confirmed. */
export type InstanceMiss = 'gone' | 'reused';

/** An executable identified once, by the kernel address of its open struct file (see OwnerRecord). */
interface KnownExe {
  /** inode and device the record gave with the address: all must match, so a reused address is missed. */
  ino: bigint;
  dev: bigint;
  exeId: Buffer;
  tag: number;
  /** An O_PATH descriptor of the file (-1 when none could be tied to it): its fstat gives the file key
   *  of every later process that runs it, without a walk through /proc/PID/exe. */
  fd: number;
}
const EXE_CAPACITY = 512;
const NO_PATH = Buffer.alloc(0);

function decodeExecTag(token: Buffer): number {
  return token.readUInt32LE(4);
}

/** st_dev + st_ino of the executable the record saw at connect, or undefined when it names none. */
function recordedExe(record: OwnerRecord): Buffer | undefined {
  if (record.exeIno === 0n || record.exeDev === 0n) return undefined;
  const id = Buffer.alloc(EXE_ID_BYTES);
  id.writeBigUInt64LE(record.exeDev, 0);
  id.writeBigUInt64LE(record.exeIno, 8);
  return id;
}

/** `entry` when it was made for the very program `recorded` names; else the same process instance with
 *  the exec tag of the recorded program, or 0 (not known) when none is recorded. The result shares
 *  `entry`'s pidfd: only one of the two may be kept. */
function forProgram(pid: number, entry: CachedToken, recorded: Buffer | undefined): CachedToken {
  if (recorded && entry.exeId.equals(recorded)) return entry;
  const tag = recorded ? execTag(recorded.readBigUInt64LE(0), recorded.readBigUInt64LE(8)) : 0;
  const token = encodeLinuxToken({ pid, startTime: entry.startTime, pidfsInode: entry.pidfsInode, execTag: tag });
  return { ...entry, token, tokenText: token.toString('base64'), exeId: recorded ?? NO_EXE };
}

export class TokenCache {
  private readonly entries = new Map<number, CachedToken>();
  private readonly exes = new Map<bigint, KnownExe>();
  private readonly c: Libc = libc();
  private readonly stat = Buffer.alloc(256);
  private readonly procStat = Buffer.alloc(1024);
  private readonly emptyPath = Buffer.from('\0');
  private readonly pidfs = kernelHasPidfs();

  /** False once a record's instance fields disagreed with /proc (see makeInstance). */
  trustRecords = true;
  private checksLeft = 16;
  private confirmed = 0;
  private inodeOnlyMisses = 0;

  /** `onDistrust` is told, once, why records stopped being trusted. */
  constructor(private readonly capacity = 1024, private readonly onDistrust?: (why: string) => void) {}

  /** The token of live `pid` and its start time (clock ticks), or undefined when it is gone. */
  get(pid: number): CachedToken | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) return undefined;
    const hit = this.entries.get(pid);
    if (hit) {
      if (hit.pidfd >= 0 && this.alive(hit.pidfd) && this.exeId(hit.exePath).equals(hit.exeId)) {
        // LRU order: most recent last
        this.entries.delete(pid);
        this.entries.set(pid, hit);
        return hit;
      }
      this.drop(pid, hit);
    }
    const entry = this.make(pid);
    if (!entry) return undefined;
    this.remember(pid, entry);
    return entry;
  }

  /** The token of live `pid` found holding a socket by a /proc scan: which program started the
   *  connection is not known (an exec may have come between), so its exec tag is 0 — never `secure`. */
  getHolder(pid: number): CachedToken | undefined {
    const live = this.get(pid);
    return live && forProgram(pid, live, undefined);
  }

  /** The token of the exact process instance a BPF record names (see OwnerRecord), running the program
   *  it ran when it connected, or why not: 'gone' when it has exited, 'reused' when its PID now names
   *  another process. Records without instance fields (no BTF) go through get(). */
  getInstance(record: OwnerRecord): CachedToken | InstanceMiss {
    const pid = record.tgid;
    if (pid <= 0 || pid > 0x3fffffff) return 'gone';
    const recorded = recordedExe(record);
    if (!this.trustRecords || record.pidfsInode === 0n || record.startBootNs === 0n || !this.pidfs) {
      const live = this.get(pid);
      if (!live) return 'gone';
      return live.startTime * NS_PER_TICK > record.bootNs ? 'reused' : forProgram(pid, live, recorded);
    }
    const startTime = record.startBootNs / NS_PER_TICK;
    const hit = this.entries.get(pid);
    if (hit && hit.pidfsInode === record.pidfsInode && hit.execId === record.execId && hit.startTime === startTime) return hit;
    if (hit) this.drop(pid, hit);
    const known = record.exeFile !== 0n ? this.exes.get(record.exeFile) : undefined;
    let made: CachedToken;
    if (known && recorded && known.ino === record.exeIno && known.dev === record.exeDev) {
      // The executable is one already identified (a fork shares its parent's open file), and the record
      // carries the kernel's own number for the process instance (a pidfs inode is never reused while
      // the system runs): the token names exactly who connected without asking the PID anything.
      const token = encodeLinuxToken({ pid, startTime, pidfsInode: record.pidfsInode, execTag: known.tag });
      made = { pidfd: -1, token, tokenText: token.toString('base64'), startTime, exePath: NO_PATH, exeId: known.exeId, pidfsInode: record.pidfsInode, execId: record.execId };
    } else {
      const fresh = this.makeInstance(pid, startTime, record.pidfsInode, record.execId);
      if (fresh === 'distrusted') return this.getInstance(record);
      if (typeof fresh === 'string') return fresh;
      // Only when the stat saw the very file the process connected with (an exec in between would not)
      if (record.exeFile !== 0n && recorded && fresh.exeId.equals(recorded)) {
        this.rememberExe(record.exeFile, { ino: record.exeIno, dev: record.exeDev, exeId: fresh.exeId, tag: decodeExecTag(fresh.token), fd: this.openExe(pid, fresh.exeId) });
      }
      // An exec since the connect: the entry keeps the pidfd but names the program that connected.
      made = forProgram(pid, fresh, recorded);
    }
    this.remember(pid, made);
    return made;
  }

  private rememberExe(file: bigint, exe: KnownExe): void {
    const before = this.exes.get(file);
    if (before) this.forgetExe(file, before);
    this.exes.set(file, exe);
    if (this.exes.size > EXE_CAPACITY) {
      const [oldest, old] = this.exes.entries().next().value as [bigint, KnownExe];
      this.forgetExe(oldest, old);
    }
  }

  private forgetExe(file: bigint, exe: KnownExe): void {
    this.exes.delete(file);
    if (exe.fd >= 0) this.c.close(exe.fd);
  }

  /** An O_PATH descriptor of the executable `pid` runs, kept only if it is the file `exeId` names (an
   *  exec or a reused PID since would have given another one); -1 otherwise. */
  private openExe(pid: number, exeId: Buffer): number {
    const fd = this.c.open(Buffer.from(`/proc/${pid}/exe\0`), O_PATH_CLOEXEC);
    if (fd < 0) return -1;
    if (this.c.fstatat(fd, this.emptyPath, this.stat, AT_EMPTY_PATH) === 0 && this.stat.subarray(0, EXE_ID_BYTES).equals(exeId)) return fd;
    this.c.close(fd);
    return -1;
  }

  /** pidfd first, then its pidfs inode must be the recorded one (so the pidfd names the instance that
   *  connected, whatever happened to the PID since), then the executable, then the pidfd must still be
   *  alive (the exe was read through /proc/PID, which a reused PID would redirect). An exec between the
   *  connect and this read would give the new program's tag: the next connect then carries a new exec
   *  counter and remakes the entry. */
  private makeInstance(pid: number, startTime: bigint, pidfsInode: bigint, execId: bigint): CachedToken | InstanceMiss | 'distrusted' {
    const c = this.c;
    const pidfd = c.syscall4(SYS.pidfd_open, pid, 0, 0, 0);
    if (pidfd < 0) return 'gone';
    const inodeNow = c.fstatat(pidfd, this.emptyPath, this.stat, AT_EMPTY_PATH) === 0 ? this.stat.readBigUInt64LE(8) : -1n;
    if (this.checksLeft > 0 && inodeNow >= 0n) {
      // The record's fields come from kernel memory at offsets this kernel's BTF gave: the first few
      // are held against /proc. The same pidfs inode (never reused) with another start time means the
      // start time is misread. Another inode with the same start time is a PID reused within one clock
      // tick — or a misread inode, if it keeps happening before any record was confirmed.
      this.checksLeft--;
      const procStart = this.startTime(pid);
      const sameInode = inodeNow === pidfsInode;
      const sameStart = procStart === startTime;
      if (procStart !== undefined && sameInode && sameStart) this.confirmed++;
      else if (procStart !== undefined && sameStart !== sameInode && (sameInode || (++this.inodeOnlyMisses >= 3 && this.confirmed === 0))) {
        c.close(pidfd);
        this.trustRecords = false;
        this.onDistrust?.(`the connect records' process fields disagree with /proc (start time ${startTime} vs ${procStart}, pidfs inode ${pidfsInode} vs ${inodeNow}): processes are now confirmed through /proc only`);
        return 'distrusted';
      }
    }
    if (inodeNow !== pidfsInode) {
      c.close(pidfd);
      return 'reused';
    }
    return this.finish(pid, pidfd, startTime, pidfsInode, execId) ?? 'gone';
  }

  /** The common end of both routes: the executable's (dev, inode) for the exec tag, read through
   *  /proc/PID, then the pidfd must still be alive (else the read may have named a reused PID's
   *  program). Closes the pidfd when it fails. */
  private finish(pid: number, pidfd: number, startTime: bigint, pidfsInode: bigint, execId: bigint): CachedToken | undefined {
    const exePath = Buffer.from(`/proc/${pid}/exe\0`);
    const exeId = Buffer.from(this.exeId(exePath));
    const tag = exeId.equals(NO_EXE) ? 0 : execTag(exeId.readBigUInt64LE(0), exeId.readBigUInt64LE(8));
    if (!this.alive(pidfd)) {
      this.c.close(pidfd);
      return undefined;
    }
    const token = encodeLinuxToken({ pid, startTime, pidfsInode, execTag: tag });
    return { pidfd, token, tokenText: token.toString('base64'), startTime, exePath, exeId, pidfsInode, execId };
  }

  private remember(pid: number, entry: CachedToken): void {
    this.entries.set(pid, entry);
    if (this.entries.size > this.capacity) {
      const [oldPid, oldest] = this.entries.entries().next().value as [number, CachedToken];
      this.drop(oldPid, oldest);
    }
  }

  /** pidfd first, then start time, pidfs inode and executable, then the pidfd must still be alive:
   *  all four describe the same process instance even if the PID is reused meanwhile. */
  private make(pid: number): CachedToken | undefined {
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
    return this.finish(pid, pidfd, startTime, inode, -1n);
  }

  /** dev:inode:size:mtime:ctime (ns) of the executable `pid` connected with — the key the attribution's
   *  hash cache uses — or undefined when that cannot be tied to the connect: the file must be the one
   *  the connect record names (`expectDev`, `expectIno`). Without a record naming it, nothing says which
   *  program connected (an exec may have come between), so there is no key. */
  fileKeyOf(pid: number, expectIno: bigint, expectDev: bigint, exeFile = 0n): string | undefined {
    if (expectIno === 0n || expectDev === 0n) return undefined;
    const st = this.stat;
    // The record's open file is one already identified: our own descriptor of it answers (one fstat,
    // no path walk). Not once the file is deleted: the descriptor would keep its blocks allocated.
    const known = exeFile !== 0n ? this.exes.get(exeFile) : undefined;
    if (known && known.ino === expectIno && known.dev === expectDev && known.fd >= 0) {
      if (this.c.fstatat(known.fd, this.emptyPath, st, AT_EMPTY_PATH) === 0 && sameFile(st, expectDev, expectIno) && linkCount(st) > 0) return statFileKey(st);
      this.c.close(known.fd);
      known.fd = -1;
    }
    const entry = this.entries.get(pid);
    const path = entry && entry.exePath.length > 0 ? entry.exePath : Buffer.from(`/proc/${pid}/exe\0`);
    if (this.c.fstatat(-100 /* AT_FDCWD */, path, st, 0) !== 0) return undefined;
    return sameFile(st, expectDev, expectIno) ? statFileKey(st) : undefined;
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

  private drop(pid: number, entry: CachedToken): void {
    this.entries.delete(pid);
    if (entry.pidfd >= 0) this.c.close(entry.pidfd);
  }

  clear(): void {
    for (const [pid, e] of this.entries) this.drop(pid, e);
    for (const [file, exe] of this.exes) this.forgetExe(file, exe);
  }
}

/** dev:inode:size:mtime:ctime (ns) from a struct stat: st_size@48, st_mtime@88/+96 ns,
 *  st_ctime@104/+112 ns (x86_64 and aarch64 alike). */
function statFileKey(st: Buffer): string {
  const mtime = st.readBigInt64LE(88) * 1_000_000_000n + st.readBigInt64LE(96);
  const ctime = st.readBigInt64LE(104) * 1_000_000_000n + st.readBigInt64LE(112);
  return formatFileKey(st.readBigUInt64LE(0), st.readBigUInt64LE(8), st.readBigInt64LE(48), mtime, ctime);
}

/** True when the struct stat is of the file (device, inode). */
function sameFile(st: Buffer, dev: bigint, ino: bigint): boolean {
  return st.readBigUInt64LE(0) === dev && st.readBigUInt64LE(8) === ino;
}

/** st_nlink: 8 bytes at 16 on x86_64, 4 bytes at 20 on aarch64 (the generic layout). */
function linkCount(st: Buffer): number {
  return process.arch === 'x64' ? Number(st.readBigUInt64LE(16)) : st.readUInt32LE(20);
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
