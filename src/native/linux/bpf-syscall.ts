// bpf(2) through koffi: the commands the socket recorder uses (maps, program load, cgroup attach,
// query and detach, program info). Layouts are the kernel's uapi <linux/bpf.h> union bpf_attr, the
// same on x86_64 and aarch64.
import { SYS, errnoName, libc } from './libc.js';

export const CMD = {
  MAP_CREATE: 0, MAP_LOOKUP_ELEM: 1, PROG_LOAD: 5, PROG_ATTACH: 8, PROG_DETACH: 9,
  PROG_GET_FD_BY_ID: 13, OBJ_GET_INFO_BY_FD: 15, PROG_QUERY: 16, MAP_LOOKUP_AND_DELETE_BATCH: 25,
} as const;
export const MAP_TYPE_LRU_HASH = 9;
export const PROG_TYPE_CGROUP_SOCK = 9;
export const PROG_TYPE_CGROUP_SOCK_ADDR = 18;
export const PROG_TYPE_SOCK_OPS = 13;
export const ATTACH = {
  INET_SOCK_CREATE: 2, SOCK_OPS: 3, INET4_CONNECT: 10, INET6_CONNECT: 11, UDP4_SENDMSG: 14, UDP6_SENDMSG: 15,
} as const;
export const F_ALLOW_MULTI = 2;
export const ATTR_BYTES = 144;
/** Program name: how a restarted agent recognises attachments left by one that crashed. */
export const PROGRAM_NAME = 'flowtop_rec';

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

export function bpf(cmd: number, attr: Buffer): number {
  const c = libc();
  const r = c.syscallBuf(SYS.bpf, cmd, attr, ATTR_BYTES);
  return r < 0 ? -c.errno() : r;
}

export function bpfOrThrow(cmd: number, attr: Buffer, call: string): number {
  const r = bpf(cmd, attr);
  if (r < 0) throw new BpfError(call, -r);
  return r;
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

export function attach(cgroupFd: number, progFd: number, type: number): void {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(type, 8);
  attr.writeUInt32LE(F_ALLOW_MULTI, 12);
  bpfOrThrow(CMD.PROG_ATTACH, attr, 'bpf(PROG_ATTACH)');
}

export function detach(cgroupFd: number, progFd: number, type: number): boolean {
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

export function programFdById(id: number): number {
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(id, 0);
  return bpf(CMD.PROG_GET_FD_BY_ID, attr);
}

/** struct bpf_prog_info of a program fd (type@0, id@4, name@64), or undefined. */
export function programInfo(fd: number): Buffer | undefined {
  const c = libc();
  const info = Buffer.alloc(256);
  const attr = Buffer.alloc(ATTR_BYTES);
  attr.writeUInt32LE(fd, 0);
  attr.writeUInt32LE(info.length, 4);
  attr.writeBigUInt64LE(c.addressOf(info), 8);
  return bpf(CMD.OBJ_GET_INFO_BY_FD, attr) < 0 ? undefined : info;
}

export function programName(fd: number): string {
  const info = programInfo(fd);
  if (!info) return '';
  const name = info.subarray(64, 80);
  const end = name.indexOf(0);
  return name.toString('latin1', 0, end < 0 ? 16 : end);
}
