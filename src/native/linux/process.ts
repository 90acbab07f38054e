// The secure route from a Linux token to an attribution. Everything read by PID is bracketed by a
// pidfd: the pidfd is opened first and shown to name the token's instance (start time, pidfs inode,
// exec tag); after reading, the pidfd must still be alive and the start time unchanged. A live pidfd
// pins its PID, so the PID cannot have been handed to another process in between: what was read
// belongs to the token's process. Only then is the answer `secure`.
import { closeSync, fstatSync, openSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { constants } from 'node:os';
import type { Attribution, AttributionReason, Signer } from '../../attribution/types.js';
import { decodeLinuxToken, type LinuxToken } from '../../protocol/tokens.js';
import { FileHasher, fileKey } from './hash.js';
import { errnoName, libc } from './libc.js';
import { DpkgIndex } from './packages.js';
import { AncestorChain, safeStat } from './ancestors.js';
import { exeState, signerOf } from './identity.js';
import { PF_EXITING, parseCmdline, parseComm, parseProcStatus, readProcFile, readProcStat, type ProcStat } from './procfs.js';
import { execTag, kernelHasPidfs, pidfdAlive, pidfdExited, pidfdInfo, pidfdOpen, pidfsInode } from './token.js';
import { UserNames } from './users.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';

export interface ResolverOptions {
  /** dpkg database root (default /var/lib/dpkg); tests point it at a temporary copy. */
  dpkgRoot?: string;
  passwdPath?: string;
  /** Distinct executables whose hashes are kept (default 4,096). */
  hashCacheSize?: number;
  /** Most ancestors listed (default 16). */
  maxParents?: number;
}

/** A step of the route that failed with an OS error. */
class StepFailure {
  constructor(readonly call: string, readonly errno: string) {}
}

export class LinuxResolver {
  readonly hasher: FileHasher;
  readonly packages: DpkgIndex;
  private readonly users: UserNames;
  private readonly chain: AncestorChain;

  constructor(options: ResolverOptions = {}) {
    this.hasher = new FileHasher(options.hashCacheSize);
    this.packages = new DpkgIndex(options.dpkgRoot);
    this.users = new UserNames(options.passwdPath);
    this.chain = new AncestorChain(options.maxParents);
  }

  resolve(tokens: readonly Uint8Array[]): Attribution[] {
    return tokens.map((token) => this.resolveOne(token));
  }

  resolveOne(bytes: Uint8Array): Attribution {
    const result = this.route(bytes);
    // The numeric errno beside its name (3 for ESRCH, 13 for EACCES), as the reason contract asks.
    const errno = result.reason?.errno;
    if (result.reason && errno !== undefined && result.reason.code === undefined) {
      const code = (constants.errno as Record<string, number | undefined>)[errno];
      if (code !== undefined) result.reason.code = code;
    }
    return result;
  }

  private route(bytes: Uint8Array): Attribution {
    const token = decodeLinuxToken(bytes);
    if (!token) {
      return {
        trust: 'insecure',
        reason: { call: 'decode token', message: `not a Linux process token (${bytes.length} bytes; 24 expected, pid not 0)` },
      };
    }
    const pidfd = pidfdOpen(token.pid);
    if (pidfd < 0) {
      const errno = errnoName(-pidfd);
      if (errno === 'ESRCH') return gone(token, { call: 'pidfd_open', errno, message: 'the process has exited' });
      // Without a pidfd nothing read by PID can be pinned to the instance: unverified at best.
      return this.insecure(token, { call: 'pidfd_open', errno, message: `the kernel refused a pidfd (${errno}), so the process cannot be verified` });
    }
    try {
      return this.secure(token, pidfd);
    } catch (error) {
      if (error instanceof StepFailure) return this.failed(token, pidfd, error.call, error.errno);
      throw error;
    } finally {
      libc().close(pidfd);
    }
  }

  private secure(token: LinuxToken, pidfd: number): Attribution {
    const pid = token.pid;
    // 1. Does the pidfd name the token's instance?
    const stat = step(`read /proc/${pid}/stat`, () => readProcStat(pid));
    if (!stat) return this.insecure(token, { call: `read /proc/${pid}/stat`, message: 'the stat line could not be parsed' });
    const mismatch = this.instanceMismatch(token, pidfd, stat);
    if (mismatch) return reused(token, mismatch);
    if (stat.state === 'Z' || stat.state === 'X') return gone(token, { call: `read /proc/${pid}/stat`, errno: 'ESRCH', message: 'the process has exited (not yet reaped)' });

    // 2. The executable actually mapped: /proc/PID/exe opens that file even if its path was replaced
    //    or deleted, so the hash below is of the code that runs.
    let exeFd: number;
    try {
      exeFd = openSync(`/proc/${pid}/exe`, 'r');
    } catch (error) {
      const errno = codeOf(error);
      if (errno === 'EACCES' || errno === 'EPERM') {
        const asRoot = process.geteuid?.() === 0;
        return this.insecure(token, {
          call: `open /proc/${pid}/exe`,
          errno,
          message: asRoot
            ? `permission denied opening the process's executable even as root (${errno}); the process is protected (e.g. another user namespace or a security module)`
            : `permission denied opening the executable of another user's process (${errno}); run flowtop as root to verify it`,
        }, pidfd);
      }
      throw new StepFailure(`open /proc/${pid}/exe`, errno);
    }
    let facts: Omit<Attribution, 'trust'>;
    let exeStat: BigIntStats;
    try {
      exeStat = fstatSync(exeFd, { bigint: true });
      // Exec tag 0: the token's maker could not say which program the process ran (e.g. the agent found
      // the owner of a socket by a /proc scan, after a possible exec). What runs now proves nothing.
      if (!token.execTag) return this.insecure(token, { call: 'verify token', message: UNKNOWN_PROGRAM }, pidfd);
      if (execTag(exeStat.dev, exeStat.ino) !== token.execTag) return execed(token);
      const link = step(`readlink /proc/${pid}/exe`, () => readlinkSync(`/proc/${pid}/exe`));
      const { path, exeChanged } = exeState(pid, link, exeStat);
      const foreignRoot = this.inForeignRoot(pid);
      const owner = foreignRoot ? undefined : this.packages.owner(path);
      const digest = step(`read ${path}`, () => this.hasher.digest(exeFd, exeStat, owner?.md5 !== undefined));
      const signer: Signer = foreignRoot
        ? { kind: 'unpackaged', label: 'unpackaged (runs in another root file system, e.g. a container, whose packages are not checked)' }
        : signerOf(owner, digest, exeChanged, path);
      // uid through the pidfd where the kernel can (no PID involved), else from /proc/PID/status.
      const uid = pidfdInfo(pidfd)?.euid ?? this.readUid(pid);
      const user = this.users.name(uid);
      facts = {
        pid,
        uid,
        ...(user !== undefined ? { user } : {}),
        name: stat.comm, // replaced below by the final re-read
        path,
        cmdline: step(`read /proc/${pid}/cmdline`, () => parseCmdline(readProcFile(`/proc/${pid}/cmdline`))),
        identity: signer.kind === 'package' && owner ? `package:${owner.package}:${owner.listedPath}` : `sha256:${digest.sha256}`,
        sha256: digest.sha256,
        exeKey: fileKey(exeStat),
        signer,
        ...(exeChanged ? { exeChanged } : {}),
        parents: this.chain.parents(stat),
      };
    } finally {
      closeSync(exeFd);
    }

    // 3. Still the same instance, running the same program? Then everything above was about it.
    const alive = pidfdAlive(pidfd);
    if (alive !== 0) {
      const errno = errnoName(-alive);
      if (errno === 'ESRCH') return gone(token, { call: 'pidfd_send_signal', errno, message: 'the process exited during the lookup' });
      return this.insecure(token, { call: 'pidfd_send_signal', errno, message: `could not confirm the process is still the same (${errno})` }, pidfd);
    }
    const after = step(`read /proc/${pid}/stat`, () => readProcStat(pid));
    if (!after || after.startTime !== token.startTime) return reused(token, 'its start time changed during the lookup');
    if (after.state === 'Z' || after.state === 'X') return gone(token, { call: `read /proc/${pid}/stat`, errno: 'ESRCH', message: 'the process exited during the lookup' });
    const now = step(`stat /proc/${pid}/exe`, () => statSync(`/proc/${pid}/exe`, { bigint: true }));
    if (now.dev !== exeStat.dev || now.ino !== exeStat.ino) {
      return token.execTag ? execed(token) : this.insecure(token, { call: `stat /proc/${pid}/exe`, message: 'the process started another program during the lookup' }, pidfd);
    }
    // The name from the last read: if an exec slipped in before the executable was opened, the path
    // and this name both describe the program that runs now (and the exe check above held).
    return { trust: 'secure', ...facts, name: after.comm };
  }

  private ourRoot: BigIntStats | undefined;

  /** True when the process sees another root directory (a container or chroot): the host's package
   *  database says nothing about its files. */
  private inForeignRoot(pid: number): boolean {
    try {
      this.ourRoot ??= statSync('/', { bigint: true });
      const theirs = statSync(`/proc/${pid}/root`, { bigint: true });
      return theirs.dev !== this.ourRoot.dev || theirs.ino !== this.ourRoot.ino;
    } catch (error) {
      expectErrno(error, GONE_OR_DENIED); // its root unreadable: judged by the host's database
      return false;
    }
  }

  /** Why the pidfd's process is not the token's, or undefined when it is. */
  private instanceMismatch(token: LinuxToken, pidfd: number, stat: ProcStat): string | undefined {
    if (stat.startTime !== token.startTime) return 'its start time differs';
    if (token.pidfsInode !== 0n && kernelHasPidfs() && pidfsInode(pidfd) !== token.pidfsInode) return 'its pidfs inode differs';
    return undefined;
  }

  /** A step failed: if the process is gone, or exiting (its executable already released), that is the
   *  answer, said once; otherwise the failure is the reason. */
  private failed(token: LinuxToken, pidfd: number, call: string, errno: string): Attribution {
    if (pidfdExited(pidfd) || errno === 'ESRCH') return gone(token, { call, errno, message: 'the process has exited' });
    if (exiting(token)) return gone(token, { call: 'verify token', errno: 'ESRCH', message: 'the process exited before it could be checked' });
    const message = errno === 'ENOENT' && call.startsWith('open /proc')
      ? 'the process has no executable (a kernel thread) or /proc hides it'
      : `${call} failed with ${errno}`;
    return this.insecure(token, { call, errno, message }, pidfd);
  }

  /** The PID-only route: what comm and cmdline say, never verified. Start time is still checked so a
   *  reused PID is reported as such and never shown with the new process's name. */
  private insecure(token: LinuxToken, reason: AttributionReason, pidfd?: number): Attribution {
    const pid = token.pid;
    let stat: ProcStat | undefined;
    try {
      stat = readProcStat(pid);
    } catch (error) {
      const errno = codeOf(error);
      if (errno === 'ENOENT' || errno === 'ESRCH') return gone(token, { call: `read /proc/${pid}/stat`, errno: 'ESRCH', message: 'the process has exited' });
    }
    if (stat && stat.startTime !== token.startTime) return reused(token, 'its start time differs');
    if (stat && (stat.state === 'Z' || stat.state === 'X')) return gone(token, { call: `read /proc/${pid}/stat`, errno: 'ESRCH', message: 'the process has exited (not yet reaped)' });
    const result: Attribution = { trust: 'insecure', pid, reason };
    if (stat) result.name = stat.comm;
    try {
      result.name = parseComm(readProcFile(`/proc/${pid}/comm`).toString('utf8'));
      result.cmdline = parseCmdline(readProcFile(`/proc/${pid}/cmdline`));
      result.uid = (pidfd !== undefined ? pidfdInfo(pidfd)?.euid : undefined) ?? this.readUid(pid);
      const user = this.users.name(result.uid);
      if (user !== undefined) result.user = user;
      if (stat) result.parents = this.chain.parents(stat);
    } catch (error) {
      // Partial facts are still worth showing, marked insecure: a process that exited or hides its
      // files midway, or a status line that did not parse (StepFailure). Anything else is a bug.
      if (!(error instanceof StepFailure)) expectErrno(error, GONE_OR_DENIED);
    }
    // Read by PID: if the process died meanwhile the PID may already name another one.
    if (pidfd !== undefined && pidfdExited(pidfd)) return gone(token, { call: 'pidfd_send_signal', errno: 'ESRCH', message: 'the process exited during the lookup' });
    const after = stat ? safeStat(pid) : undefined;
    if (stat && (!after || after.startTime !== token.startTime)) return gone(token, { call: `read /proc/${pid}/stat`, errno: 'ESRCH', message: 'the process exited during the lookup' });
    return result;
  }

  private readUid(pid: number): number {
    const status = parseProcStatus(step(`read /proc/${pid}/status`, () => readProcFile(`/proc/${pid}/status`).toString('utf8')));
    if (!status) throw new StepFailure(`read /proc/${pid}/status`, 'EINVAL');
    return status.uids[1]; // effective uid: the one that owns the process's sockets
  }
}

/** True when the token's process has begun to exit (or is a zombie, or already gone). */
function exiting(token: LinuxToken): boolean {
  const stat = safeStat(token.pid);
  return !stat || stat.startTime !== token.startTime || stat.state === 'Z' || stat.state === 'X' || (stat.flags & PF_EXITING) !== 0;
}

function step<T>(call: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new StepFailure(call, codeOf(error));
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EIO';
}


function gone(token: LinuxToken, reason: AttributionReason): Attribution {
  return { trust: 'gone', pid: token.pid, reason };
}

/** The PID now names another process. Nothing about that process is returned. */
function reused(token: LinuxToken, detail: string): Attribution {
  return gone(token, { call: 'verify token', errno: 'ESRCH', message: `PID reused by another process (${detail}); the token's process has exited` });
}

const UNKNOWN_PROGRAM = 'the token does not say which program the process ran when it made the connection (its owner was found by a /proc scan, or the kernel did not say): what it runs now cannot vouch for the connection';

function execed(token: LinuxToken): Attribution {
  return gone(token, { call: 'verify token', errno: 'ESRCH', message: "the process has since started another program (exec); the token's program is no longer running" });
}
