// Makes the Linux process token (layout: encodeLinuxToken in src/protocol/tokens.ts) for a live PID.
// A PID alone is reused; pid + start time + pidfs inode names exactly one process instance.
import { fstatSync, statSync, statfsSync } from 'node:fs';
import { encodeLinuxToken } from '../../protocol/tokens.js';
import { SYS, libc } from './libc.js';
import { readProcStat } from './procfs.js';

/** Start time of PID (field 22 of /proc/PID/stat, clock ticks since boot), or undefined when the
 *  process does not exist or its stat line cannot be parsed. */
export function readStartTime(pid: number): bigint | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    return readProcStat(pid)?.startTime;
  } catch {
    return undefined;
  }
}

/** pidfd_open(pid, 0): a file descriptor that names this process instance for as long as it is open.
 *  Returns the fd, or -errno. */
export function pidfdOpen(pid: number): number {
  const c = libc();
  const fd = c.syscall(SYS.pidfd_open, pid, 0);
  return fd >= 0 ? fd : -c.errno();
}

const ESRCH = 3;

/** pidfd_send_signal(pidfd, 0): 0 while the process lives (a zombie still counts), -ESRCH once it has
 *  exited. EPERM (not allowed to signal another user's process) is checked after the process is found,
 *  so it also means alive: 0. Other errors come back as -errno. */
export function pidfdAlive(pidfd: number): number {
  const c = libc();
  if (c.syscall(SYS.pidfd_send_signal, pidfd, 0, 0, 0) === 0) return 0;
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
  } catch {
    pidfsKnown = false;
  } finally {
    libc().close(self);
  }
  return pidfsKnown;
}

/** The pidfs inode a pidfd refers to, or 0n where the kernel has no pidfs. */
export function pidfsInode(pidfd: number): bigint {
  return kernelHasPidfs() ? fstatSync(pidfd, { bigint: true }).ino : 0n;
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
  try {
    const st = statSync(`/proc/${pid}/exe`, { bigint: true });
    return execTag(st.dev, st.ino);
  } catch {
    return 0;
  }
}

/** The token of the live process PID, or undefined when it does not exist (or is not visible).
 *  Order matters: the pidfd is opened first and checked alive after the start time is read, so the
 *  start time and the inode describe the same instance even if the PID is reused meanwhile. */
export function makeLinuxToken(pid: number): Buffer | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) return undefined;
  const pidfd = pidfdOpen(pid);
  if (pidfd < 0) return undefined;
  try {
    const startTime = readStartTime(pid);
    if (startTime === undefined) return undefined;
    const inode = pidfsInode(pidfd);
    const tag = readExecTag(pid);
    if (pidfdExited(pidfd)) return undefined;
    return encodeLinuxToken({ pid, startTime, pidfsInode: inode, execTag: tag });
  } finally {
    libc().close(pidfd);
  }
}
