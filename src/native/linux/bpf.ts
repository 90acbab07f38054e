// The socket-cookie recorder: a tiny cgroup BPF program, assembled here instruction by instruction and
// loaded with bpf(2) through koffi (no compiler, no libbpf at run time). At connect, UDP sendmsg and
// socket creation it stores socket cookie → (pid_tgid, boot ns) in an LRU map, so a queued packet's
// owner is one map lookup away (~0.3 µs) whatever the machine holds. Where the kernel describes itself
// (BTF) the record also carries the exact process instance that connected — its start time, exec
// counter and pidfs inode, read from task_struct — so the agent can name it without reading /proc.
// Layouts are the kernel's uapi <linux/bpf.h> (union bpf_attr, struct bpf_insn, the bpf_sock and
// bpf_sock_addr contexts); they are the same on x86_64 and aarch64.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYS, errnoName, libc } from './libc.js';
import { loadKernelBtf, type Btf } from './btf.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';

const CMD = {
  MAP_CREATE: 0, MAP_LOOKUP_ELEM: 1, PROG_LOAD: 5, PROG_ATTACH: 8, PROG_DETACH: 9,
  PROG_GET_FD_BY_ID: 13, OBJ_GET_INFO_BY_FD: 15, PROG_QUERY: 16,
} as const;
const MAP_TYPE_LRU_HASH = 9;
const PROG_TYPE_CGROUP_SOCK = 9;
const PROG_TYPE_CGROUP_SOCK_ADDR = 18;
export const ATTACH = {
  INET_SOCK_CREATE: 2, INET4_CONNECT: 10, INET6_CONNECT: 11, UDP4_SENDMSG: 14, UDP6_SENDMSG: 15,
} as const;
const F_ALLOW_MULTI = 2;
const ATTR_BYTES = 144;
/** Program name: how a restarted agent recognises attachments left by one that crashed. */
export const PROGRAM_NAME = 'flowtop_rec';

const HELPER = { map_update_elem: 2, get_current_pid_tgid: 14, get_current_task: 35, get_socket_cookie: 46, probe_read_kernel: 113, ktime_get_boot_ns: 125 } as const;
/** Bytes of a record: pid_tgid, boot ns, then (zero when not read) start_boottime, self_exec_id and
 *  pidfs inode of the thread-group leader, and the address of the running executable's struct file
 *  with its inode number and its file system's device number. */
export const RECORD_BYTES = 64;

export class BpfError extends Error {
  constructor(readonly call: string, readonly errno: number, readonly log?: string) {
    super(`${call}: ${errnoName(errno)}${log ? `\n${log}` : ''}`);
    this.name = 'BpfError';
  }
  get code(): string {
    return errnoName(this.errno);
  }
}

const EAGAIN = 11;

function bpf(cmd: number, attr: Buffer): number {
  const c = libc();
  const r = c.syscallBuf(SYS.bpf, cmd, attr, ATTR_BYTES);
  return r < 0 ? -c.errno() : r;
}

function bpfOrThrow(cmd: number, attr: Buffer, call: string): number {
  const r = bpf(cmd, attr);
  if (r < 0) throw new BpfError(call, -r);
  return r;
}

// ---- assembler: 8-byte instructions {opcode, dst|src<<4, off i16, imm i32}, little-endian ----
type Insn = [code: number, dst: number, src: number, off: number, imm: number];
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R6 = 6, R7 = 7, R8 = 8, R10 = 10;
const call = (helper: number): Insn => [0x85, 0, 0, 0, helper];
const stxDW = (dst: number, off: number, src: number): Insn => [0x7b, dst, src, off, 0];
const stxW = (dst: number, off: number, src: number): Insn => [0x63, dst, src, off, 0];
const stW = (dst: number, off: number, imm: number): Insn => [0x62, dst, 0, off, imm];
const stDW = (dst: number, off: number, imm: number): Insn => [0x7a, dst, 0, off, imm];
const ldxDW = (dst: number, src: number, off: number): Insn => [0x79, dst, src, off, 0];
const ldxW = (dst: number, src: number, off: number): Insn => [0x61, dst, src, off, 0];
const movReg = (dst: number, src: number): Insn => [0xbf, dst, src, 0, 0];
const movImm = (dst: number, imm: number): Insn => [0xb7, dst, 0, 0, imm];
const addImm = (dst: number, imm: number): Insn => [0x07, dst, 0, 0, imm];
const jeqImm = (dst: number, imm: number, off: number): Insn => [0x15, dst, 0, off, imm];
const exit = (): Insn => [0x95, 0, 0, 0, 0];
/** r = map fd (BPF_PSEUDO_MAP_FD): two slots. */
const ldMap = (dst: number, fd: number): Insn[] => [[0x18, dst, 1, 0, fd], [0, 0, 0, 0, 0]];

function encode(insns: Insn[]): Buffer {
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, dst, src, off, imm], i) => {
    out.writeUInt8(code, i * 8);
    out.writeUInt8(((src & 0xf) << 4) | (dst & 0xf), i * 8 + 1);
    out.writeInt16LE(off, i * 8 + 2);
    out.writeInt32LE(imm, i * 8 + 4);
  });
  return out;
}

/** Where the fields the recorder reads sit in this kernel's structs (bytes). */
export interface TaskOffsets {
  /** task_struct.group_leader: the thread-group leader, whose fields describe the process. */
  groupLeader: number;
  /** task_struct.start_boottime (ns, CLOCK_BOOTTIME): /proc/PID/stat field 22 is this / 10^7. */
  startBoottime: number;
  /** task_struct.self_exec_id: bumped by every execve, so a changed value means new code. */
  selfExecId: number;
  /** task_struct.thread_pid and pid.ino: the pidfs inode number a pidfd of the process stats as. */
  threadPid: number;
  pidIno: number;
  /** task_struct.mm → mm_struct.exe_file → file.f_inode → inode.i_ino: which open executable the
   *  process runs (a forked child shares its parent's), so its identity can be reused without a stat.
   *  Then inode.i_sb → super_block.s_dev: the device, without which an inode number names nothing (any
   *  file system, a FUSE one included, can hand out the number another file has on the root one).
   *  Undefined when any of the six is missing: the record then carries zeros there. */
  exe?: { mm: number; exeFile: number; fInode: number; iIno: number; iSb: number; sDev: number };
}

/** The offsets from the kernel's BTF, or undefined when it has none or a field is missing/odd. */
export function taskOffsets(btf: Btf | null = loadKernelBtf()): TaskOffsets | undefined {
  if (!btf) return undefined;
  const leader = btf.field('task_struct', 'group_leader');
  const start = btf.field('task_struct', 'start_boottime');
  const exec = btf.field('task_struct', 'self_exec_id');
  const threadPid = btf.field('task_struct', 'thread_pid');
  const ino = btf.field('pid', 'ino');
  const ok = leader?.kind === 'ptr' && threadPid?.kind === 'ptr' && start?.size === 8 && ino?.size === 8 && (exec?.size === 8 || exec?.size === 4);
  if (!ok) return undefined;
  const mm = btf.field('task_struct', 'mm');
  const exeFile = btf.field('mm_struct', 'exe_file');
  const fInode = btf.field('file', 'f_inode');
  const iIno = btf.field('inode', 'i_ino');
  const iSb = btf.field('inode', 'i_sb');
  const sDev = btf.field('super_block', 's_dev');
  const exe = mm?.kind === 'ptr' && exeFile?.kind === 'ptr' && fInode?.kind === 'ptr' && iIno?.size === 8 && iSb?.kind === 'ptr' && sDev?.size === 4
    ? { mm: mm.offset, exeFile: exeFile.offset, fInode: fInode.offset, iIno: iIno.offset, iSb: iSb.offset, sDev: sDev.offset }
    : undefined;
  // A 4-byte exec id (older kernels) is read as 8 bytes: the upper half is a neighbouring field that
  // does not change across the process's life, so comparisons still see every exec.
  return { groupLeader: leader.offset, startBoottime: start.offset, selfExecId: exec.offset, threadPid: threadPid.offset, pidIno: ino.offset, ...(exe ? { exe } : {}) };
}

// Stack layout of the program (r10 = frame end): cookie key at -8; the 64-byte record at -72
// (pid_tgid -72, boot ns -64, start_boottime -56, self_exec_id -48, pidfs inode -40, exe file -32,
// exe inode number -24, exe device -16); a scratch slot at -80; the UDP tuple key at -104 (address
// -104..-88, dst port -88, src port -84).
const REC = -72;
const SCRATCH = -80;
const TUPLE = -104;

/** r1 = dst (stack), r2 = 8, r3 = src + off; probe_read_kernel zero-fills dst when the read fails. */
const readKernel = (dstOff: number, srcReg: number, off: number): Insn[] => [
  movReg(R1, R10), addImm(R1, dstOff), movImm(R2, 8), movReg(R3, srcReg), addImm(R3, off), call(HELPER.probe_read_kernel),
];

/** Where a sendmsg program also records the datagram's tuple, and which address its context holds. */
export interface TupleRecord {
  map: number;
  /** UDP4_SENDMSG's context holds user_ip4, UDP6_SENDMSG's user_ip6. */
  family: 4 | 6;
}

/** cookie → record. With `tuple` (the sendmsg hooks only), also {dst address (16 bytes; IPv4 as
 *  ::ffff:a.b.c.d), dst port, src port} → the same record, for datagrams whose socket is gone (sender
 *  exited) before the packet is judged. The connect and sock_create hooks read no address from their
 *  context, so they take no family. With `task`, the record names the process instance. */
export function recorderProgram(cookieMap: number, task?: TaskOffsets, tuple?: TupleRecord): Buffer {
  const insns: Insn[] = [
    movReg(R6, R1),
    call(HELPER.get_socket_cookie),
    stxDW(R10, -8, R0),
    call(HELPER.get_current_pid_tgid),
    stxDW(R10, REC, R0),
    call(HELPER.ktime_get_boot_ns),
    stxDW(R10, REC + 8, R0),
  ];
  if (task) {
    insns.push(
      call(HELPER.get_current_task),
      movReg(R7, R0),
      movReg(R8, R0),
      ...readKernel(SCRATCH, R7, task.groupLeader),
      ldxDW(R7, R10, SCRATCH), // the leader (0 when unreadable: the reads below then fail and zero-fill)
      ...readKernel(REC + 16, R7, task.startBoottime),
      ...readKernel(REC + 24, R7, task.selfExecId),
      ...readKernel(SCRATCH, R7, task.threadPid),
      ldxDW(R7, R10, SCRATCH),
      ...readKernel(REC + 32, R7, task.pidIno),
    );
    if (task.exe) {
      // from the calling thread, not the leader: a leader that exited first has no mm any more
      insns.push(
        ...readKernel(SCRATCH, R8, task.exe.mm),
        ldxDW(R8, R10, SCRATCH),
        ...readKernel(REC + 40, R8, task.exe.exeFile),
        ldxDW(R8, R10, REC + 40),
        ...readKernel(SCRATCH, R8, task.exe.fInode),
        ldxDW(R8, R10, SCRATCH),
        ...readKernel(REC + 48, R8, task.exe.iIno),
        ...readKernel(SCRATCH, R8, task.exe.iSb),
        ldxDW(R8, R10, SCRATCH),
        // s_dev is 4 bytes: the reader keeps the low half of the 8 read
        ...readKernel(REC + 56, R8, task.exe.sDev),
      );
    } else insns.push(stDW(R10, REC + 40, 0), stDW(R10, REC + 48, 0), stDW(R10, REC + 56, 0));
  } else {
    for (let off = 16; off < RECORD_BYTES; off += 8) insns.push(stDW(R10, REC + off, 0));
  }
  insns.push(
    ...ldMap(R1, cookieMap),
    movReg(R2, R10), addImm(R2, -8),
    movReg(R3, R10), addImm(R3, REC),
    movImm(R4, 0),
    call(HELPER.map_update_elem),
  );
  if (tuple !== undefined) {
    const address: Insn[] = tuple.family === 4
      ? [
        stW(R10, TUPLE, 0), stW(R10, TUPLE + 4, 0), stW(R10, TUPLE + 8, -65536 /* bytes 00 00 ff ff */),
        ldxW(R2, R6, 4), stxW(R10, TUPLE + 12, R2), // ctx->user_ip4 (network order)
      ]
      : [0, 1, 2, 3].flatMap((i): Insn[] => [ldxW(R2, R6, 8 + 4 * i), stxW(R10, TUPLE + 4 * i, R2)]); // ctx->user_ip6[i]
    const tail: Insn[] = [
      ldxW(R2, R1, 44), // sk->src_port (host order)
      stxW(R10, TUPLE + 20, R2),
      ...address,
      ldxW(R2, R6, 24), // ctx->user_port (network order, low 16 bits)
      stxW(R10, TUPLE + 16, R2),
      ...ldMap(R1, tuple.map),
      movReg(R2, R10), addImm(R2, TUPLE),
      movReg(R3, R10), addImm(R3, REC),
      movImm(R4, 0),
      call(HELPER.map_update_elem),
    ];
    insns.push(ldxDW(R1, R6, 64), jeqImm(R1, 0, tail.length), ...tail); // ctx->sk, may be NULL
  }
  insns.push(movImm(R0, 1), exit());
  return encode(insns);
}

export function createLruMap(keySize: number, valueSize: number, maxEntries: number, name: string): number {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(MAP_TYPE_LRU_HASH, 0);
  attr.writeUInt32LE(keySize, 4);
  attr.writeUInt32LE(valueSize, 8);
  attr.writeUInt32LE(maxEntries, 12);
  attr.write(name.slice(0, 15), 28, 'latin1');
  return bpfOrThrow(CMD.MAP_CREATE, attr, 'bpf(MAP_CREATE)');
}

export function loadProgram(progType: number, expectedAttach: number, insns: Buffer): number {
  const c = libc();
  const attr = Buffer.alloc(ATTR_BYTES);
  const license = Buffer.from('GPL\0', 'latin1');
  const log = Buffer.alloc(64 * 1024);
  attr.writeUInt32LE(progType, 0);
  attr.writeUInt32LE(insns.length / 8, 4);
  attr.writeBigUInt64LE(c.addressOf(insns), 8);
  attr.writeBigUInt64LE(c.addressOf(license), 16);
  attr.writeUInt32LE(1, 24);
  attr.writeUInt32LE(log.length, 28);
  attr.writeBigUInt64LE(c.addressOf(log), 32);
  attr.write(PROGRAM_NAME, 48, 'latin1');
  attr.writeUInt32LE(expectedAttach, 68);
  // The verifier gives up with EAGAIN whenever a signal is pending for the thread (a profiler's SIGPROF
  // every millisecond, a child's SIGCHLD): signals wait until the program is loaded.
  const fd = withSignalsHeld(() => {
    let result = bpf(CMD.PROG_LOAD, attr);
    for (let tries = 1; result === -EAGAIN && tries < 5; tries++) result = bpf(CMD.PROG_LOAD, attr);
    return result;
  });
  if (fd < 0) {
    const text = log.toString('latin1', 0, Math.max(0, log.indexOf(0))).trim();
    throw new BpfError('bpf(PROG_LOAD)', -fd, text || undefined);
  }
  return fd;
}

const SIG_BLOCK = 0;
const SIG_SETMASK = 2;

/** Runs `work` with every signal blocked for this thread (the kernel's sigset is 8 bytes); signals
 *  that arrive meanwhile are delivered when the old mask is restored. */
function withSignalsHeld<T>(work: () => T): T {
  const c = libc();
  const all = Buffer.alloc(8, 0xff);
  const old = Buffer.alloc(8);
  const held = c.syscall(SYS.rt_sigprocmask, SIG_BLOCK, c.addressOf(all), c.addressOf(old), 8) === 0;
  try {
    return work();
  } finally {
    if (held) c.syscall(SYS.rt_sigprocmask, SIG_SETMASK, c.addressOf(old), 0n, 8);
  }
}

function attach(cgroupFd: number, progFd: number, type: number): void {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(type, 8);
  attr.writeUInt32LE(F_ALLOW_MULTI, 12);
  bpfOrThrow(CMD.PROG_ATTACH, attr, 'bpf(PROG_ATTACH)');
}

function detach(cgroupFd: number, progFd: number, type: number): boolean {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(type, 8);
  return bpf(CMD.PROG_DETACH, attr) >= 0;
}

/** IDs of the programs attached to the cgroup at this hook. */
export function queryAttached(cgroupFd: number, type: number): number[] {
  const c = libc();
  const ids = Buffer.alloc(4 * 256);
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(type, 4);
  attr.writeBigUInt64LE(c.addressOf(ids), 16);
  attr.writeUInt32LE(256, 24);
  bpfOrThrow(CMD.PROG_QUERY, attr, 'bpf(PROG_QUERY)');
  const n = Math.min(attr.readUInt32LE(24), 256);
  return Array.from({ length: n }, (_, i) => ids.readUInt32LE(i * 4));
}

function programFdById(id: number): number {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(id, 0);
  return bpf(CMD.PROG_GET_FD_BY_ID, attr);
}

/** struct bpf_prog_info of a program fd (type@0, id@4, name@64), or undefined. */
function programInfo(fd: number): Buffer | undefined {
  const c = libc();
  const info = Buffer.alloc(256);
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(fd, 0);
  attr.writeUInt32LE(info.length, 4);
  attr.writeBigUInt64LE(c.addressOf(info), 8);
  return bpf(CMD.OBJ_GET_INFO_BY_FD, attr) < 0 ? undefined : info;
}

function programName(fd: number): string {
  const info = programInfo(fd);
  if (!info) return '';
  const name = info.subarray(64, 80);
  const end = name.indexOf(0);
  return name.toString('latin1', 0, end < 0 ? 16 : end);
}

const ALL_HOOKS = [ATTACH.INET_SOCK_CREATE, ATTACH.INET4_CONNECT, ATTACH.INET6_CONNECT, ATTACH.UDP4_SENDMSG, ATTACH.UDP6_SENDMSG];

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
      return rec;
    } catch (error) {
      rec.close();
      throw error;
    }
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
    closeSync(this.cgroupFd);
  }
}
