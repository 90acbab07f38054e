// Makes the Linux process token (layout: encodeLinuxToken in src/protocol/tokens.ts) for a live PID.
// A PID alone is reused; pid + start time + pidfs inode names exactly one process instance, and the
// exec tag names the program it runs. TokenBuilder is the one place a token is built: the agent's token
// cache (per queued packet) and the one-shot makeLinuxToken (monitor, `flowtop inspect`) both call it.
// It goes straight to libc into reused buffers, so a build makes no fs.Stats or string per call.
import { statfsSync } from 'node:fs';
import { encodeLinuxToken } from '../../protocol/tokens.js';
import { SYS, errnoName, libc, type Libc } from './libc.js';
import { parseStartTime } from './procfs.js';
import { FILE_ID_BYTES, fileIdDev, fileIdIno, fileIdView, statIno, statLayout, type StatLayout } from './stat-layout.js';
import { expectErrno } from '../../errno.js';

/** pidfd_open(pid, 0): a file descriptor that names this process instance for as long as it is open.
 *  Returns the fd, or -errno. */
export function pidfdOpen(pid: number): number {
  const c = libc();
  const fd = c.syscall4(SYS.pidfd_open, pid, 0, 0, 0);
  return fd >= 0 ? fd : -c.errno();
}

const ESRCH = 3;

/** pidfd_send_signal(pidfd, 0): 0 while the process lives (a zombie still counts), -ESRCH once it has
 *  exited. EPERM (not allowed to signal another user's process) is checked after the process is found,
 *  so it also means alive: 0. Other errors come back as -errno. */
export function pidfdAlive(pidfd: number): number {
  const c = libc();
  if (c.syscall4(SYS.pidfd_send_signal, pidfd, 0, 0, 0) === 0) return 0;
  const errno = c.errno();
  return errno === 1 /* EPERM */ ? 0 : -errno;
}

export function pidfdExited(pidfd: number): boolean {
  return pidfdAlive(pidfd) === -ESRCH;
}

export interface PidfdInfo {
  pid: number;
  ppid: number;
  ruid: number;
  euid: number;
}

/** PIDFD_GET_INFO = _IOWR(0xFF, 11, struct pidfd_info): 64-byte struct (PIDFD_INFO_SIZE_VER0), fields
 *  mask@0 cgroupid@8 pid@16 tgid@20 ppid@24 ruid@28 rgid@32 euid@36 … (include/uapi/linux/pidfd.h). */
const PIDFD_GET_INFO = 0xc040ff0b;
const PIDFD_INFO_PID = 1n;
const PIDFD_INFO_CREDS = 2n;
let pidfdInfoWorks = true;

/** pid, parent and uids read through the pidfd itself (Linux 6.13+): they describe the pidfd's
 *  process, whatever its PID names by now. Undefined where the kernel lacks the ioctl, or once the
 *  process has exited (ESRCH). */
export function pidfdInfo(pidfd: number): PidfdInfo | undefined {
  if (!pidfdInfoWorks) return undefined;
  const info = Buffer.alloc(64);
  info.writeBigUInt64LE(PIDFD_INFO_PID | PIDFD_INFO_CREDS, 0);
  if (libc().ioctlBuf(pidfd, PIDFD_GET_INFO, info) !== 0) {
    const errno = libc().errno();
    if (errno === 25 /* ENOTTY */ || errno === 22 /* EINVAL */) pidfdInfoWorks = false;
    return undefined;
  }
  const mask = info.readBigUInt64LE(0);
  if ((mask & (PIDFD_INFO_PID | PIDFD_INFO_CREDS)) !== (PIDFD_INFO_PID | PIDFD_INFO_CREDS)) return undefined;
  return { pid: info.readUInt32LE(16), ppid: info.readUInt32LE(24), ruid: info.readUInt32LE(28), euid: info.readUInt32LE(36) };
}

let pidfsKnown: boolean | undefined;

/** PIDFS_MAGIC ("PIDF"), the f_type of pidfs (include/uapi/linux/magic.h). */
const PIDFS_MAGIC = 0x50494446;

/** True when the kernel backs pidfds with pidfs (6.9+): then each process has its own inode, never
 *  reused during a boot. On older kernels every pidfd shares one anonymous inode. Decided once from the
 *  file system type of a pidfd (statfs through /proc/self/fd, which reaches the pidfd's own file). */
export function kernelHasPidfs(): boolean {
  if (pidfsKnown !== undefined) return pidfsKnown;
  const self = pidfdOpen(process.pid);
  if (self < 0) return (pidfsKnown = false);
  try {
    pidfsKnown = statfsSync(`/proc/self/fd/${self}`).type === PIDFS_MAGIC;
  } catch (error) {
    expectErrno(error, ['ENOENT']); // no /proc: pidfs cannot be told apart, so it is not relied on
    pidfsKnown = false;
  } finally {
    libc().close(self);
  }
  return pidfsKnown;
}

/** The pidfs inode a pidfd refers to, or 0n where the kernel has no pidfs. Throws when the pidfd
 *  cannot be stated (a closed descriptor). */
export function pidfsInode(pidfd: number): bigint {
  if (!kernelHasPidfs()) return 0n;
  const builder = sharedBuilder();
  const inode = builder.inodeOf(pidfd);
  if (inode < 0n) throw new Error(`fstat of pidfd ${pidfd} failed: ${errnoName(builder.lastErrno())}`);
  return inode;
}

/** The exec tag of a token: FNV-1a (32-bit) of the executable's "dev:inode", never 0 (0 means unknown).
 *  Start time and pidfs inode survive an exec; this field is what tells the program before an exec
 *  from the program after it (an exec of the very same file keeps the tag, and the code identity). */
export function execTag(dev: bigint, ino: bigint): number {
  let hash = 0x811c9dc5;
  for (const ch of `${dev}:${ino}`) {
    hash ^= ch.charCodeAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash === 0 ? 1 : hash;
}

/** The exec tag of PID's running executable, or 0 when /proc/PID/exe cannot be read (another user's
 *  process without privilege, a kernel thread). */
export function readExecTag(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) return 0;
  const builder = sharedBuilder();
  return builder.tagOf(builder.exeId(exePathOf(pid)));
}

/** Start time of PID (field 22 of /proc/PID/stat, clock ticks since boot), or undefined when the
 *  process does not exist or its stat line cannot be parsed. */
export function readStartTime(pid: number): bigint | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return sharedBuilder().startTime(pid);
}

/** The token of the live process PID, or undefined when it does not exist (or is not visible). */
export function makeLinuxToken(pid: number): Buffer | undefined {
  const built = sharedBuilder().build(pid);
  if (!built) return undefined;
  libc().close(built.pidfd);
  return built.token;
}

/** A token as built, with what it was built from (for a cache to re-check it later). */
export interface BuiltToken {
  /** The pidfd opened for the build, still open: the caller keeps or closes it. */
  pidfd: number;
  token: Buffer;
  tokenText: string;
  startTime: bigint;
  pidfsInode: bigint;
  /** /proc/PID/exe, NUL-terminated. */
  exePath: Buffer;
  /** st_dev + st_ino of the executable at the build (zeros when it could not be read): its own copy. */
  exeId: Buffer;
  /** The token's exec tag (execTag of exeId; 0 when it could not be read). */
  execTag: number;
}

const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_PATH_CLOEXEC = 0o10000000 | 0o2000000;
/** The exe id of a process whose executable could not be read: the exec tag is then 0, "not known". */
export const NO_EXE: Buffer = Buffer.alloc(FILE_ID_BYTES);

/** /proc/PID/exe as a NUL-terminated path. */
export function exePathOf(pid: number): Buffer {
  return Buffer.from(`/proc/${pid}/exe\0`);
}

/** Builds tokens and answers the checks a token cache makes, into buffers it reuses. Views it returns
 *  (stat(), exeId()) are valid until its next call. One per thread: each queue worker has its own. */
export class TokenBuilder {
  private readonly c: Libc = libc();
  private readonly layout: StatLayout = statLayout();
  private readonly st = Buffer.alloc(256);
  private readonly line = Buffer.alloc(1024);
  private readonly emptyPath = Buffer.from('\0');
  /** Whether pidfds have their own inodes here (see kernelHasPidfs); without, tokens carry 0. */
  readonly pidfs = kernelHasPidfs();

  /** errno of the last failed call. */
  lastErrno(): number {
    return this.c.errno();
  }

  /** pidfd_open(pid, 0), or -1 when the process is gone or not visible. */
  openPidfd(pid: number): number {
    const fd = this.c.syscall4(SYS.pidfd_open, pid, 0, 0, 0);
    return fd >= 0 ? fd : -1;
  }

  close(fd: number): void {
    this.c.close(fd);
  }

  /** The process behind `pidfd` has not exited (see pidfdAlive). */
  alive(pidfd: number): boolean {
    return this.c.syscall4(SYS.pidfd_send_signal, pidfd, 0, 0, 0) === 0 || this.c.errno() === 1 /* EPERM */;
  }

  /** struct stat of an open descriptor (a view of the reused buffer), or undefined. */
  statFd(fd: number): Buffer | undefined {
    return this.c.fstatat(fd, this.emptyPath, this.st, AT_EMPTY_PATH) === 0 ? this.st : undefined;
  }

  /** struct stat of a NUL-terminated path, following links (a view of the reused buffer), or undefined. */
  statPath(path: Buffer): Buffer | undefined {
    return this.c.fstatat(AT_FDCWD, path, this.st, 0) === 0 ? this.st : undefined;
  }

  /** st_ino of an open descriptor (for a pidfd: its pidfs inode), or -1n when it cannot be stated. */
  inodeOf(fd: number): bigint {
    const st = this.statFd(fd);
    return st ? statIno(st, this.layout) : -1n;
  }

  /** st_dev + st_ino of the file at `path` (a view of the reused buffer), or NO_EXE when unreadable. */
  exeId(path: Buffer): Buffer {
    const st = this.statPath(path);
    return st ? fileIdView(st, this.layout) : NO_EXE;
  }

  /** The exec tag of an executable's file id (0 for NO_EXE). */
  tagOf(exeId: Buffer): number {
    if (exeId.equals(NO_EXE)) return 0;
    return execTag(fileIdDev(exeId), fileIdIno(exeId));
  }

  /** An O_PATH descriptor of the executable `pid` runs, if it is the file `exeId` names (an exec or a
   *  reused PID since would have given another one); -1 otherwise. */
  openExecutable(pid: number, exeId: Buffer): number {
    const fd = this.c.open(exePathOf(pid), O_PATH_CLOEXEC);
    if (fd < 0) return -1;
    const st = this.statFd(fd);
    if (st && fileIdView(st, this.layout).equals(exeId)) return fd;
    this.c.close(fd);
    return -1;
  }

  /** Field 22 of /proc/PID/stat (clock ticks since boot), read and parsed from bytes. */
  startTime(pid: number): bigint | undefined {
    const c = this.c;
    const fd = c.open(Buffer.from(`/proc/${pid}/stat\0`), O_RDONLY_CLOEXEC);
    if (fd < 0) return undefined;
    const b = this.line;
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

  /** The token of live `pid`, or undefined when it does not exist (or is not visible). Order matters:
   *  the pidfd is opened first, then start time, pidfs inode and executable are read, then the pidfd
   *  must still be alive — so all describe the same process instance even if the PID is reused
   *  meanwhile. The pidfd stays open in the result. */
  build(pid: number): BuiltToken | undefined {
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) return undefined;
    const pidfd = this.openPidfd(pid);
    if (pidfd < 0) return undefined;
    const startTime = this.startTime(pid);
    const inode = startTime === undefined ? -1n : this.pidfs ? this.inodeOf(pidfd) : 0n;
    if (startTime === undefined || inode < 0n) {
      this.c.close(pidfd);
      return undefined;
    }
    return this.complete(pid, pidfd, startTime, inode);
  }

  /** The end of every build: the executable's (dev, inode) for the exec tag, read through /proc/PID,
   *  then the pidfd must still be alive (else the read may have named a reused PID's program). Closes
   *  the pidfd when it fails. For a caller that already holds the pidfd and knows the instance. */
  complete(pid: number, pidfd: number, startTime: bigint, pidfsInode: bigint): BuiltToken | undefined {
    const exePath = exePathOf(pid);
    const exeId = Buffer.from(this.exeId(exePath));
    const tag = this.tagOf(exeId);
    if (!this.alive(pidfd)) {
      this.c.close(pidfd);
      return undefined;
    }
    const token = encodeLinuxToken({ pid, startTime, pidfsInode, execTag: tag });
    return { pidfd, token, tokenText: token.toString('base64'), startTime, pidfsInode, exePath, exeId, execTag: tag };
  }
}

let shared: TokenBuilder | undefined;

/** The builder of this thread's one-shot calls (makeLinuxToken, readStartTime, readExecTag). */
function sharedBuilder(): TokenBuilder {
  return (shared ??= new TokenBuilder());
}
