// Tokens of processes that connect often, kept with an open pidfd. A pidfd names one process
// instance: while pidfd_send_signal(fd, 0) succeeds, the PID has not been recycled, so the cached
// start time and pidfs inode still hold. The executable is re-checked on every hit (an exec keeps the
// PID and the start time but changes the code): one stat of /proc/PID/exe compared with the cached
// (dev, inode) bytes. Tokens are built by the native TokenBuilder (src/native/linux/token.ts), the one
// makeLinuxToken uses: straight to libc into reused buffers, as this runs for each queued packet.
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
import { NO_EXE, TokenBuilder, execTag, exePathOf, type BuiltToken } from '../native/linux/token.js';
import { fileIdDev, fileIdIno, isFile, makeFileId, statFileKey, statLinks } from '../native/linux/stat-layout.js';
import type { OwnerRecord } from '../native/linux/bpf.js';

/** CLOCK_BOOTTIME ns per /proc/PID/stat clock tick (USER_HZ 100 on every architecture we run on). */
const NS_PER_TICK = 10_000_000n;

export interface CachedToken extends BuiltToken {
  /** -1 when the token was made from a record alone (no PID lookup was needed). */
  pidfd: number;
  /** Empty when the token was made from a record alone. */
  exePath: Buffer;
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

/** st_dev + st_ino of the executable the record saw at connect, or undefined when it names none. */
function recordedExe(record: OwnerRecord): Buffer | undefined {
  if (record.exeIno === 0n || record.exeDev === 0n) return undefined;
  return makeFileId(record.exeDev, record.exeIno);
}

/** `entry` when it was made for the very program `recorded` names; else the same process instance with
 *  the exec tag of the recorded program, or 0 (not known) when none is recorded. The result shares
 *  `entry`'s pidfd: only one of the two may be kept. */
function forProgram(pid: number, entry: CachedToken, recorded: Buffer | undefined): CachedToken {
  if (recorded && entry.exeId.equals(recorded)) return entry;
  const tag = recorded ? execTag(fileIdDev(recorded), fileIdIno(recorded)) : 0;
  const token = encodeLinuxToken({ pid, startTime: entry.startTime, pidfsInode: entry.pidfsInode, execTag: tag });
  return { ...entry, token, tokenText: token.toString('base64'), exeId: recorded ?? NO_EXE, execTag: tag };
}

export class TokenCache {
  private readonly entries = new Map<number, CachedToken>();
  private readonly exes = new Map<bigint, KnownExe>();
  private readonly b = new TokenBuilder();

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
      if (hit.pidfd >= 0 && this.b.alive(hit.pidfd) && this.b.exeId(hit.exePath).equals(hit.exeId)) {
        // LRU order: most recent last
        this.entries.delete(pid);
        this.entries.set(pid, hit);
        return hit;
      }
      this.drop(pid, hit);
    }
    const built = this.b.build(pid);
    if (!built) return undefined;
    const entry: CachedToken = { ...built, execId: -1n };
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
    if (!this.trustRecords || record.pidfsInode === 0n || record.startBootNs === 0n || !this.b.pidfs) {
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
      made = { pidfd: -1, token, tokenText: token.toString('base64'), startTime, exePath: NO_PATH, exeId: known.exeId, execTag: known.tag, pidfsInode: record.pidfsInode, execId: record.execId };
    } else {
      const fresh = this.makeInstance(pid, startTime, record.pidfsInode, record.execId);
      if (fresh === 'distrusted') return this.getInstance(record);
      if (typeof fresh === 'string') return fresh;
      // Only when the stat saw the very file the process connected with (an exec in between would not)
      if (record.exeFile !== 0n && recorded && fresh.exeId.equals(recorded)) {
        this.rememberExe(record.exeFile, { ino: record.exeIno, dev: record.exeDev, exeId: fresh.exeId, tag: fresh.execTag, fd: this.b.openExecutable(pid, fresh.exeId) });
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
    if (exe.fd >= 0) this.b.close(exe.fd);
  }

  /** pidfd first, then its pidfs inode must be the recorded one (so the pidfd names the instance that
   *  connected, whatever happened to the PID since), then the executable, then the pidfd must still be
   *  alive (the exe was read through /proc/PID, which a reused PID would redirect). An exec between the
   *  connect and this read would give the new program's tag: the next connect then carries a new exec
   *  counter and remakes the entry. */
  private makeInstance(pid: number, startTime: bigint, pidfsInode: bigint, execId: bigint): CachedToken | InstanceMiss | 'distrusted' {
    const pidfd = this.b.openPidfd(pid);
    if (pidfd < 0) return 'gone';
    const inodeNow = this.b.inodeOf(pidfd);
    if (this.checksLeft > 0 && inodeNow >= 0n) {
      // The record's fields come from kernel memory at offsets this kernel's BTF gave: the first few
      // are held against /proc. The same pidfs inode (never reused) with another start time means the
      // start time is misread. Another inode with the same start time is a PID reused within one clock
      // tick — or a misread inode, if it keeps happening before any record was confirmed.
      this.checksLeft--;
      const procStart = this.b.startTime(pid);
      const sameInode = inodeNow === pidfsInode;
      const sameStart = procStart === startTime;
      if (procStart !== undefined && sameInode && sameStart) this.confirmed++;
      else if (procStart !== undefined && sameStart !== sameInode && (sameInode || (++this.inodeOnlyMisses >= 3 && this.confirmed === 0))) {
        this.b.close(pidfd);
        this.trustRecords = false;
        this.onDistrust?.(`the connect records' process fields disagree with /proc (start time ${startTime} vs ${procStart}, pidfs inode ${pidfsInode} vs ${inodeNow}): processes are now confirmed through /proc only`);
        return 'distrusted';
      }
    }
    if (inodeNow !== pidfsInode) {
      this.b.close(pidfd);
      return 'reused';
    }
    const built = this.b.complete(pid, pidfd, startTime, pidfsInode);
    return built ? { ...built, execId } : 'gone';
  }

  private remember(pid: number, entry: CachedToken): void {
    this.entries.set(pid, entry);
    if (this.entries.size > this.capacity) {
      const [oldPid, oldest] = this.entries.entries().next().value as [number, CachedToken];
      this.drop(oldPid, oldest);
    }
  }

  /** dev:inode:size:mtime:ctime (ns) of the executable `pid` connected with — the key the attribution's
   *  hash cache uses — or undefined when that cannot be tied to the connect: the file must be the one
   *  the connect record names (`expectDev`, `expectIno`). Without a record naming it, nothing says which
   *  program connected (an exec may have come between), so there is no key. */
  fileKeyOf(pid: number, expectIno: bigint, expectDev: bigint, exeFile = 0n): string | undefined {
    if (expectIno === 0n || expectDev === 0n) return undefined;
    // The record's open file is one already identified: our own descriptor of it answers (one fstat,
    // no path walk). Not once the file is deleted: the descriptor would keep its blocks allocated.
    const known = exeFile !== 0n ? this.exes.get(exeFile) : undefined;
    if (known && known.ino === expectIno && known.dev === expectDev && known.fd >= 0) {
      const st = this.b.statFd(known.fd);
      if (st && isFile(st, expectDev, expectIno) && statLinks(st) > 0) return statFileKey(st);
      this.b.close(known.fd);
      known.fd = -1;
    }
    const entry = this.entries.get(pid);
    const st = this.b.statPath(entry && entry.exePath.length > 0 ? entry.exePath : exePathOf(pid));
    return st && isFile(st, expectDev, expectIno) ? statFileKey(st) : undefined;
  }

  private drop(pid: number, entry: CachedToken): void {
    this.entries.delete(pid);
    if (entry.pidfd >= 0) this.b.close(entry.pidfd);
  }

  clear(): void {
    for (const [pid, e] of this.entries) this.drop(pid, e);
    for (const [file, exe] of this.exes) this.forgetExe(file, exe);
  }
}
