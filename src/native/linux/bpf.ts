// The socket-cookie recorder: the cgroup BPF program of bpf-program.ts, loaded with bpf(2) through
// koffi (no compiler, no libbpf at run time) and attached at connect, UDP sendmsg and socket creation.
// It stores socket cookie → (pid_tgid, boot ns) in an LRU map, so a queued packet's owner is one map
// lookup away (~0.3 µs) whatever the machine holds. Where the kernel describes itself (BTF) the record
// also carries the exact process instance that connected — its start time, exec counter and pidfs
// inode, read from task_struct — so the agent can name it without reading /proc.
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { libc } from './libc.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';
import { ATTACH, ATTR_BYTES, BpfError, CMD, PROGRAM_NAME, PROG_TYPE_CGROUP_SOCK, PROG_TYPE_CGROUP_SOCK_ADDR, PROG_TYPE_SOCK_OPS, attach, bpf, createLruMap, detach, loadProgram, programFdById, programInfo, programName, queryAttached } from './bpf-syscall.js';
import { ClosedSockets } from './closed-sockets.js';
import { CLOSED_KEY_BYTES, CLOSED_VALUE_BYTES, RECORD_BYTES, closeCountersProgram, recorderProgram, taskOffsets, type TaskOffsets } from './bpf-program.js';

const ALL_HOOKS = [ATTACH.INET_SOCK_CREATE, ATTACH.INET4_CONNECT, ATTACH.INET6_CONNECT, ATTACH.UDP4_SENDMSG, ATTACH.UDP6_SENDMSG, ATTACH.SOCK_OPS];
/** Closed TCP sockets' final counters kept at once (an LRU: a flow's end is read within a poll of
 *  its close, so this covers ~65,000 closes a second at the agent's 1 s polls). */
const CLOSED_ENTRIES = 65536;
/** Ids of BPF programs some other live process holds a descriptor of (/proc/PID/fdinfo `prog_id`). A
 *  running agent keeps its programs' descriptors open; a crashed one's are closed by the kernel. */
export function programsHeldByOthers(): Set<number> {
  const held = new Set<number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch (error) {
    expectErrno(error, ['ENOENT']); // no /proc mounted: nobody can be seen holding anything
    return held;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch (error) {
      expectErrno(error, GONE_OR_DENIED); // exited, or a kernel thread
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
        const id = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
        if (id) held.add(Number(id));
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED); // closed meanwhile
      }
    }
  }
  return held;
}

/** Detaches every program named PROGRAM_NAME from the cgroup (left by an agent that crashed: cgroup
 *  attachments outlive their process), except those another live process holds: another agent's (in
 *  another network namespace) that shares this cgroup. Returns how many were removed. */
export function removeStalePrograms(cgroupFd: number, except: ReadonlySet<number> = programsHeldByOthers()): number {
  let removed = 0;
  for (const hook of ALL_HOOKS) {
    let ids: number[];
    try {
      ids = queryAttached(cgroupFd, hook);
    } catch (error) {
      // the kernel refused the query (a hook it does not have, say): nothing of ours can be there
      if (!(error instanceof BpfError)) throw error;
      continue;
    }
    for (const id of ids) {
      if (except.has(id)) continue;
      const fd = programFdById(id);
      if (fd < 0) continue;
      try {
        if (programName(fd) === PROGRAM_NAME && detach(cgroupFd, fd, hook)) removed++;
      } finally {
        libc().close(fd);
      }
    }
  }
  return removed;
}

export interface RecorderOptions {
  /** LRU entries of the cookie map (default 65,536). */
  maxEntries?: number;
  /** false: never read task_struct (what a kernel without BTF gets; for tests of that path). */
  readTask?: boolean;
}

export interface OwnerRecord {
  tgid: number;
  /** CLOCK_BOOTTIME ns when the socket connected / sent / was created. */
  bootNs: bigint;
  /** The process instance that did it, read from its task_struct (0n when the kernel gave no BTF):
   *  start time (CLOCK_BOOTTIME ns), exec counter, pidfs inode. */
  startBootNs: bigint;
  execId: bigint;
  pidfsInode: bigint;
  /** Kernel address of the executable's struct file and its inode number (0n when not read): the same
   *  pair for two processes means the same open executable (a fork shares it). */
  exeFile: bigint;
  exeIno: bigint;
  /** The executable's device as stat(2) reports it (st_dev), from its super block; 0n when not read. */
  exeDev: bigint;
}

/** The kernel's dev_t (major << 20 | minor) as stat(2) encodes it for user space (new_encode_dev). */
export function userDev(kernelDev: number): bigint {
  const major = kernelDev >>> 20;
  const minor = kernelDev & 0xfffff;
  return BigInt((minor & 0xff) | (major << 8)) | (BigInt(minor & ~0xff) << 12n);
}

/** Looks records up in the recorder's maps. Map fds belong to the process, so a worker thread can
 *  build its own view from the fds the main thread opened. */
export class RecorderView {
  private readonly attr = Buffer.alloc(ATTR_BYTES);
  private readonly key = Buffer.alloc(24);
  private readonly value = Buffer.alloc(RECORD_BYTES);
  constructor(readonly cookieMap: number, readonly tupleMap: number) {
    const c = libc();
    this.attr.writeBigUInt64LE(c.addressOf(this.key), 8);
    this.attr.writeBigUInt64LE(c.addressOf(this.value), 16);
  }

  /** The record for a socket cookie (from an exact sock_diag lookup), or undefined. */
  lookupCookie(cookie: bigint): OwnerRecord | undefined {
    this.key.writeBigUInt64LE(cookie, 0);
    return this.lookup(this.cookieMap);
  }

  /** The sendmsg record of a datagram (remote address bytes, 4 or 16; remote port; local port). */
  lookupUdpTuple(remote: Buffer, remotePort: number, localPort: number): OwnerRecord | undefined {
    if (remote.length !== 4 && remote.length !== 16) return undefined;
    this.key.fill(0);
    if (remote.length === 4) {
      this.key[10] = 0xff;
      this.key[11] = 0xff;
      remote.copy(this.key, 12);
    } else remote.copy(this.key, 0);
    this.key.writeUInt16BE(remotePort, 16);
    this.key.writeUInt32LE(localPort, 20);
    return this.lookup(this.tupleMap);
  }

  private lookup(map: number): OwnerRecord | undefined {
    this.attr.writeUInt32LE(map, 0);
    if (bpf(CMD.MAP_LOOKUP_ELEM, this.attr) < 0) return undefined;
    const v = this.value;
    return {
      tgid: v.readUInt32LE(4),
      bootNs: v.readBigUInt64LE(8),
      startBootNs: v.readBigUInt64LE(16),
      execId: v.readBigUInt64LE(24),
      pidfsInode: v.readBigUInt64LE(32),
      exeFile: v.readBigUInt64LE(40),
      exeIno: v.readBigUInt64LE(48),
      exeDev: v.readBigUInt64LE(48) === 0n ? 0n : userDev(v.readUInt32LE(56)),
    };
  }
}

/** The recorder attached to one cgroup v2 directory (which covers every cgroup below it). */
export class SocketRecorder extends RecorderView {
  private readonly progFds: number[] = [];
  /** Each program with its hook, the kernel's id for it (0 if unknown) and the hook's label. */
  private readonly attached: Array<{ prog: number; hook: number; id: number; label: string }> = [];
  readonly hooks: string[] = [];
  /** Whether records name the process instance (start time, exec counter, pidfs inode). */
  readsTask = false;
  /** How the process instance is found when records do not name it. */
  instanceNote = 'process instance read from task_struct (BTF offsets)';
  /** Why closing sockets' counters are not read, when they are not. */
  closeCountersNote?: string;
  /** Closed TCP sockets' final counters; undefined when the kernel refused the sock_ops program. */
  closedSockets?: ClosedSockets;
  private closedMap = -1;
  private closed = false;

  private constructor(readonly cgroupPath: string, private readonly cgroupFd: number, cookieMap: number, tupleMap: number, readonly staleRemoved: number) {
    super(cookieMap, tupleMap);
  }

  /** Removes stale copies, loads and attaches the programs. Throws BpfError (EPERM without
   *  CAP_BPF/CAP_SYS_ADMIN, EINVAL on kernels without these hooks…). */
  static attach(cgroupPath: string, options: RecorderOptions = {}): SocketRecorder {
    const c = libc();
    const cgroupFd = openSync(cgroupPath, 0o200000 /* O_DIRECTORY */);
    let cookieMap = -1;
    let tupleMap = -1;
    let stale = 0;
    try {
      stale = removeStalePrograms(cgroupFd);
      cookieMap = createLruMap(8, RECORD_BYTES, options.maxEntries ?? 65536, 'flowtop_cookie');
      tupleMap = createLruMap(24, RECORD_BYTES, 16384, 'flowtop_udp');
    } catch (error) {
      if (cookieMap >= 0) c.close(cookieMap);
      closeSync(cgroupFd);
      throw error;
    }
    const rec = new SocketRecorder(cgroupPath, cgroupFd, cookieMap, tupleMap, stale);
    try {
      let task = options.readTask === false ? undefined : taskOffsets();
      if (options.readTask === false) rec.instanceNote = 'process instance read from /proc (task_struct reads turned off)';
      else if (!task) rec.instanceNote = 'process instance read from /proc (the kernel has no BTF for task_struct)';
      const plan: Array<[number, number, (t?: TaskOffsets) => Buffer, string]> = [
        [PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH.INET4_CONNECT, (t) => recorderProgram(cookieMap, t), 'connect4'],
        [PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH.INET6_CONNECT, (t) => recorderProgram(cookieMap, t), 'connect6'],
        [PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH.UDP4_SENDMSG, (t) => recorderProgram(cookieMap, t, { map: tupleMap, family: 4 }), 'sendmsg4'],
        [PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH.UDP6_SENDMSG, (t) => recorderProgram(cookieMap, t, { map: tupleMap, family: 6 }), 'sendmsg6'],
        [PROG_TYPE_CGROUP_SOCK, ATTACH.INET_SOCK_CREATE, (t) => recorderProgram(cookieMap, t), 'sock_create'],
      ];
      for (const [type, hook, program, label] of plan) {
        let prog: number;
        try {
          prog = loadProgram(type, hook, program(task));
        } catch (error) {
          // Reading kernel memory needs CAP_PERFMON and no lockdown: without it, record what the
          // basic helpers give (the first program decides for all, so every record has one shape).
          if (!task || rec.progFds.length > 0 || !(error instanceof BpfError)) throw error;
          rec.instanceNote = `process instance read from /proc (task_struct reads refused: ${error.code})`;
          task = undefined;
          prog = loadProgram(type, hook, program(task));
        }
        rec.progFds.push(prog);
        attach(cgroupFd, prog, hook);
        rec.attached.push({ prog, hook, id: programInfo(prog)?.readUInt32LE(4) ?? 0, label });
        rec.hooks.push(label);
      }
      rec.readsTask = task !== undefined;
      rec.attachCloseCounters();
      return rec;
    } catch (error) {
      rec.close();
      throw error;
    }
  }

  /** Final byte counters of closing TCP sockets (closedCounters). Optional: without it (a kernel
   *  that refuses sock_ops programs) flows that end between two polls keep the bytes seen last. */
  private attachCloseCounters(): void {
    const c = libc();
    let map = -1;
    let prog = -1;
    try {
      map = createLruMap(CLOSED_KEY_BYTES, CLOSED_VALUE_BYTES, CLOSED_ENTRIES, 'flowtop_closed');
      prog = loadProgram(PROG_TYPE_SOCK_OPS, ATTACH.SOCK_OPS, closeCountersProgram(map));
      attach(this.cgroupFd, prog, ATTACH.SOCK_OPS);
    } catch (error) {
      if (!(error instanceof BpfError)) throw error;
      if (prog >= 0) c.close(prog);
      if (map >= 0) c.close(map);
      this.closeCountersNote = `final byte counters at close unavailable (${error.message.split('\n')[0]})`;
      return;
    }
    this.closedMap = map;
    this.closedSockets = new ClosedSockets(map);
    this.progFds.push(prog);
    this.attached.push({ prog, hook: ATTACH.SOCK_OPS, id: programInfo(prog)?.readUInt32LE(4) ?? 0, label: 'sock_ops' });
    this.hooks.push('sock_ops');
  }

  /** Labels of the hooks whose program is no longer attached to the cgroup: anyone with CAP_BPF can
   *  detach it (an agent started on the same cgroup removed "stale" copies that were live), and from
   *  then on connects there go unrecorded. All of them when the cgroup cannot be queried any more. */
  detachedHooks(): string[] {
    if (this.closed) return [];
    const byHook = new Map<number, number[]>();
    const missing: string[] = [];
    for (const a of this.attached) {
      let ids = byHook.get(a.hook);
      if (!ids) {
        try {
          ids = queryAttached(this.cgroupFd, a.hook);
        } catch (error) {
          // the cgroup cannot be queried any more (EBADF/ENOENT): every program counts as detached
          if (!(error instanceof BpfError)) throw error;
          ids = [];
        }
        byHook.set(a.hook, ids);
      }
      if (a.id !== 0 && !ids.includes(a.id)) missing.push(a.label);
    }
    return missing;
  }

  /** Attaches again the programs of the hooks named (from detachedHooks). Throws BpfError when the
   *  kernel refuses. */
  reattach(labels: readonly string[]): void {
    for (const a of this.attached) if (labels.includes(a.label)) attach(this.cgroupFd, a.prog, a.hook);
  }

  /** Detaches and closes everything (a clean exit leaves nothing attached). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const { prog, hook } of this.attached) detach(this.cgroupFd, prog, hook);
    const c = libc();
    for (const fd of this.progFds) c.close(fd);
    c.close(this.cookieMap);
    c.close(this.tupleMap);
    if (this.closedMap >= 0) c.close(this.closedMap);
    closeSync(this.cgroupFd);
  }
}
