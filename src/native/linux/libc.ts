// The one place flowtop binds libc through koffi. Every other Linux native module imports from here,
// so each C function is declared once. Loaded lazily: importing this file on macOS costs nothing.
import koffi from 'koffi';
import { constants } from 'node:os';

export interface Libc {
  /** syscall(2) with integer arguments only (pidfd_open, pidfd_send_signal, bpf with a pointer as bigint). */
  syscall(nr: number, ...args: Array<number | bigint>): number;
  /** syscall(2) with exactly four integer arguments: no per-call type list (hot paths: pidfd_send_signal). */
  syscall4(nr: number, a1: number, a2: number, a3: number, a4: number): number;
  /** syscall(2) whose third argument is a buffer (bpf(2): cmd, attr, size). */
  syscallBuf(nr: number, a1: number, buf: Buffer, size: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrLen: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  close(fd: number): number;
  read(fd: number, buf: Buffer, len: number): number;
  /** sched_getaffinity / sched_setaffinity of a thread (0: the calling thread) with a CPU bit mask buffer. */
  schedGetaffinity(tid: number, mask: Buffer): number;
  schedSetaffinity(tid: number, mask: Buffer): number;
  /** open(2) of a NUL-terminated path held in a Buffer (no string conversion per call). */
  open(path: Buffer, flags: number): number;
  /** fstatat(2) into a caller's struct stat buffer (fields: stat-layout.ts); path NUL-terminated. */
  fstatat(dirfd: number, path: Buffer, statBuf: Buffer, flags: number): number;
  /** ioctl(2) whose argument is an in/out struct (e.g. PIDFD_GET_INFO). */
  ioctlBuf(fd: number, request: number, arg: Buffer): number;
  /** The address of a Buffer's memory (for pointers inside bpf(2) attributes). Keep the Buffer alive. */
  addressOf(buf: Buffer): bigint;
  /** flock(2): an advisory whole-file lock on an open descriptor, released when it closes or the
   *  process dies. */
  flock(fd: number, operation: number): number;
  /** prctl(PR_SET_NAME): names the calling thread (15 bytes at most), as `top -H` and /proc show it. */
  nameThread(name: string): number;
  /** clock_gettime(2) into a caller's struct timespec buffer (16 bytes: seconds, nanoseconds). */
  clockGettime(clock: number, ts: Buffer): number;
  /** The errno left by the last call on this thread. */
  errno(): number;
}

let cached: Libc | undefined;

/** glibc could not be loaded here (not Linux, or a system without libc.so.6). */
export class LibcUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LibcUnavailable';
  }
}

function loadLibc(): ReturnType<typeof koffi.load> {
  if (process.platform !== 'linux') throw new LibcUnavailable('the Linux native layer only loads on Linux');
  try {
    return koffi.load('libc.so.6');
  } catch (error) {
    throw new LibcUnavailable(`cannot load libc.so.6: ${(error as Error).message}`);
  }
}

const PR_SET_NAME = 15;

export function libc(): Libc {
  if (cached) return cached;
  const lib = loadLibc();
  const syscallVar = lib.func('long syscall(long nr, ...)');
  const syscallBuf = lib.func('syscall', 'long', ['long', 'long', 'void *', 'long']);
  const syscall4 = lib.func('syscall', 'long', ['long', 'long', 'long', 'long', 'long']);
  const open = lib.func('int open(const void *path, int flags)');
  const getaffinity = lib.func('int sched_getaffinity(int pid, size_t len, _Out_ void *mask)');
  const setaffinity = lib.func('int sched_setaffinity(int pid, size_t len, const void *mask)');
  const fstatat = lib.func('int fstatat(int dirfd, const void *path, _Out_ void *buf, int flags)');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, const void *addr, uint32_t len)');
  const connect = lib.func('int connect(int fd, const void *addr, uint32_t len)');
  const send = lib.func('long send(int fd, const void *buf, size_t len, int flags)');
  const recv = lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)');
  const sendto = lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)');
  const setsockopt = lib.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
  const getsockopt = lib.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ void *len)');
  const getsockname = lib.func('int getsockname(int fd, _Out_ void *addr, _Inout_ void *len)');
  const close = lib.func('int close(int fd)');
  const read = lib.func('long read(int fd, _Out_ void *buf, size_t len)');
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, _Inout_ void *arg)');
  const memsetPtr = lib.func('void *memset(void *s, int c, size_t n)');
  const flock = lib.func('int flock(int fd, int operation)');
  const prctlName = lib.func('prctl', 'int', ['int', 'const char *', 'unsigned long', 'unsigned long', 'unsigned long']);
  const clockGettime = lib.func('int clock_gettime(int clock, _Out_ void *ts)');
  cached = {
    syscall: (nr, ...args) => {
      const typed: Array<string | number | bigint> = [];
      for (const arg of args) typed.push('long', arg);
      return Number(syscallVar(nr, ...typed));
    },
    syscallBuf: (nr, a1, buf, size) => Number(syscallBuf(nr, a1, buf, size)),
    syscall4: (nr, a1, a2, a3, a4) => Number(syscall4(nr, a1, a2, a3, a4)),
    open: (path, flags) => open(path, flags) as number,
    schedGetaffinity: (tid, mask) => getaffinity(tid, mask.length, mask) as number,
    schedSetaffinity: (tid, mask) => setaffinity(tid, mask.length, mask) as number,
    fstatat: (dirfd, path, buf, flags) => fstatat(dirfd, path, buf, flags) as number,
    socket: (d, t, p) => socket(d, t, p) as number,
    bind: (fd, a, l) => bind(fd, a, l) as number,
    connect: (fd, a, l) => connect(fd, a, l) as number,
    send: (fd, b, l, f) => Number(send(fd, b, l, f)),
    recv: (fd, b, l, f) => Number(recv(fd, b, l, f)),
    sendto: (fd, b, l, f, a, al) => Number(sendto(fd, b, l, f, a, al)),
    setsockopt: (fd, lv, n, v, l) => setsockopt(fd, lv, n, v, l) as number,
    getsockopt: (fd, lv, n, v, l) => getsockopt(fd, lv, n, v, l) as number,
    getsockname: (fd, a, l) => getsockname(fd, a, l) as number,
    close: (fd) => close(fd) as number,
    read: (fd, b, l) => Number(read(fd, b, l)),
    ioctlBuf: (fd, r, a) => ioctl(fd, r, a) as number,
    addressOf: (buf) => BigInt(koffi.address(memsetPtr(buf, 0, 0)) as bigint),
    flock: (fd, op) => flock(fd, op) as number,
    nameThread: (name) => prctlName(PR_SET_NAME, name.slice(0, 15), 0, 0, 0) as number,
    clockGettime: (clock, ts) => clockGettime(clock, ts) as number,
    errno: () => koffi.errno(),
  };
  return cached;
}

/** errno number → symbolic name ("EACCES"), for reasons shown to people. */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** x86_64 and aarch64 syscall numbers of the calls flowtop makes directly. */
export const SYS = process.arch === 'arm64'
  ? { pidfd_open: 434, pidfd_send_signal: 424, bpf: 280, getpid: 172, rt_sigprocmask: 135 }
  : { pidfd_open: 434, pidfd_send_signal: 424, bpf: 321, getpid: 39, rt_sigprocmask: 14 };
