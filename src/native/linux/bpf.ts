// The socket-cookie recorder: the cgroup BPF program of bpf-program.ts, loaded with bpf(2) through
// koffi (no compiler, no libbpf at run time) and attached at connect, UDP sendmsg and socket creation.
// It stores socket cookie → (pid_tgid, boot ns) in an LRU map, so a queued packet's owner is one map
// lookup away (~0.3 µs) whatever the machine holds. Where the kernel describes itself (BTF) the record
// also carries the exact process instance that connected — its start time, exec counter and pidfs
// inode, read from task_struct — so the agent can name it without reading /proc.
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { libc } from './libc.js';
import { parseAddressWords } from '../../net/address.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';
import { ATTACH, ATTR_BYTES, BpfError, CMD, PROGRAM_NAME, PROG_TYPE_CGROUP_SOCK, PROG_TYPE_CGROUP_SOCK_ADDR, PROG_TYPE_SOCK_OPS, attach, bpf, createLruMap, detach, loadProgram, programFdById, programInfo, programName, queryAttached } from './bpf-syscall.js';
import { CLOSED_KEY_BYTES, CLOSED_VALUE_BYTES, RECORD_BYTES, closeCountersProgram, recorderProgram, taskOffsets, type TaskOffsets } from './bpf-program.js';

const ALL_HOOKS = [ATTACH.INET_SOCK_CREATE, ATTACH.INET4_CONNECT, ATTACH.INET6_CONNECT, ATTACH.UDP4_SENDMSG, ATTACH.UDP6_SENDMSG, ATTACH.SOCK_OPS];
/** Closed TCP sockets' final counters kept at once (an LRU: a flow's end is read within a poll of
 *  its close, so this covers ~65,000 closes a second at the agent's 1 s polls). */
const CLOSED_ENTRIES = 65536;
// TCP states a socket leaves for CLOSE (uapi numbering): from LAST_ACK and CLOSING both FINs were
// exchanged; from FIN_WAIT2 (into TIME_WAIT) ours was acked and the peer's arrived; from CLOSE_WAIT
// (an abort) only the peer's arrived; from ESTABLISHED or FIN_WAIT1 (a reset) neither is counted.
const FIN_WAIT2 = 5, CLOSE_WAIT = 8, LAST_ACK = 9, CLOSING = 11;
const FIN_RECEIVED_BEFORE_CLOSE = new Set([FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING]);
const FIN_ACKED_BEFORE_CLOSE = new Set([FIN_WAIT2, LAST_ACK, CLOSING]);
/** Where `closedCounters` looks (see there). */
export type ClosedLook = 'collected' | 'after-collect' | 'anywhere';

/** The ports of a socket that closed: which tracked flows may be it. */
export interface ClosedSocketPorts {
  localPort: number;
  remotePort: number;
}

/** Closed sockets' entries read per batch call (the buffers are 64 bytes an entry). */
const CLOSED_BATCH = 4096;

/** A closed socket's ends and counters as the close-counters program stored them. */
interface ClosedEntry extends ClosedSocketPorts {
  /** Addresses as four network-order words (IPv4 as ::ffff:a.b.c.d). */
  local: ArrayLike<number>;
  remote: ArrayLike<number>;
  received: number;
  acked: number;
  /** The TCP state it left for CLOSE. */
  left: number;
}

/** An address as the close-counters map keys it (four network-order words, IPv4 as
 *  ::ffff:a.b.c.d), written into `out` without allocating; undefined when the text is not one. */
export function closedKeyWords(text: string, out: Uint32Array): Uint32Array | undefined {
  const family = parseAddressWords(text, out);
  if (family === 0) return undefined;
  if (family === 4) {
    out[3] = out[0]!;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0xffff;
  }
  return out;
}

/** Collected entries by their two ports (a number: no key text to build per flow); the addresses
 *  tell apart the few that share both. */
type ClosedByPorts = Map<number, ClosedEntry[]>;

function closedPortsKey(localPort: number, remotePort: number): number {
  return localPort * 65536 + remotePort;
}

/** Removes and returns the entry of these ends from `collected`. */
function takeCollected(collected: ClosedByPorts, ports: number, local: ArrayLike<number>, remote: ArrayLike<number>): ClosedEntry | undefined {
  const same = collected.get(ports);
  if (!same) return undefined;
  for (let i = 0; i < same.length; i++) {
    const e = same[i]!;
    if (e.local[0] !== local[0] || e.local[1] !== local[1] || e.local[2] !== local[2] || e.local[3] !== local[3]) continue;
    if (e.remote[0] !== remote[0] || e.remote[1] !== remote[1] || e.remote[2] !== remote[2] || e.remote[3] !== remote[3]) continue;
    if (same.length === 1) collected.delete(ports);
    else same.splice(i, 1);
    return e;
  }
  return undefined;
}

/** Data counters from a closed socket's entry: the SYN and FINs take a sequence number each. */
function dataCounters(e: Pick<ClosedEntry, 'received' | 'acked' | 'left'>, connected: boolean): { rx: number; tx: number } {
  return {
    rx: Math.max(0, e.received - (FIN_RECEIVED_BEFORE_CLOSE.has(e.left) ? 1 : 0)),
    tx: Math.max(0, e.acked - (connected ? 1 : 0) - (FIN_ACKED_BEFORE_CLOSE.has(e.left) ? 1 : 0)),
  };
}

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

/** Buffers of the close-counters map's batch reads, with the bpf_attr pointing at them. */
class ClosedBatchBuffers {
  readonly attr = Buffer.alloc(ATTR_BYTES);
  readonly inBatch = Buffer.alloc(8);
  readonly outBatch = Buffer.alloc(8);
  readonly keys = Buffer.alloc(CLOSED_BATCH * CLOSED_KEY_BYTES);
  readonly values = Buffer.alloc(CLOSED_BATCH * CLOSED_VALUE_BYTES);
  readonly inAddress: bigint;

  constructor() {
    const c = libc();
    this.inAddress = c.addressOf(this.inBatch);
    // union bpf_attr's batch: in_batch, out_batch, keys, values (u64 each), count, map_fd (u32 each)
    this.attr.writeBigUInt64LE(c.addressOf(this.outBatch), 8);
    this.attr.writeBigUInt64LE(c.addressOf(this.keys), 16);
    this.attr.writeBigUInt64LE(c.addressOf(this.values), 24);
  }
}

/** Looks records up in the recorder's maps. Map fds belong to the process, so a worker thread can
 *  build its own view from the fds the main thread opened. */
export class RecorderView {
  private readonly attr = Buffer.alloc(ATTR_BYTES);
  private readonly key = Buffer.alloc(24);
  private readonly value = Buffer.alloc(RECORD_BYTES);
  private readonly closedAttr = Buffer.alloc(ATTR_BYTES);
  private readonly closedKey = Buffer.alloc(CLOSED_KEY_BYTES);
  private readonly closedValue = Buffer.alloc(CLOSED_VALUE_BYTES);
  /** Entries `collectClosed` took from the map at its last call and the one before. */
  private closedCollected: ClosedByPorts | undefined;
  private closedCollectedBefore: ClosedByPorts = new Map();
  private closedBatch: ClosedBatchBuffers | undefined;
  private closedBatchRefused = false;
  /** The last collection read the whole map (else a miss there is asked of the map). */
  private closedCollectComplete = false;

  /** `closedMap`: the close-counters map, or -1 without it. */
  constructor(readonly cookieMap: number, readonly tupleMap: number, protected closedMap = -1) {
    const c = libc();
    this.attr.writeBigUInt64LE(c.addressOf(this.key), 8);
    this.attr.writeBigUInt64LE(c.addressOf(this.value), 16);
    this.closedAttr.writeBigUInt64LE(c.addressOf(this.closedKey), 8);
    this.closedAttr.writeBigUInt64LE(c.addressOf(this.closedValue), 16);
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

  /** A closed TCP socket's final data counters by its ends (addresses as four network-order words,
   *  an IPv4 one as ::ffff:a.b.c.d), when the close-counters program saw it close; undefined
   *  otherwise. `connected`: this side connected (its SYN is in bytes acked). Where it looks:
   *  'collected', only in what `collectClosed` read (no syscall: has it closed already?);
   *  'after-collect', there, and in the map only when that read could not cover it (the caller
   *  collected after the socket was seen gone); 'anywhere', there and then in the map. */
  closedCounters(local: ArrayLike<number>, localPort: number, remote: ArrayLike<number>, remotePort: number, connected: boolean, look: ClosedLook = 'anywhere'): { rx: number; tx: number } | undefined {
    if (this.closedMap < 0) return undefined;
    if (this.closedCollected) {
      const ports = closedPortsKey(localPort, remotePort);
      const entry = takeCollected(this.closedCollected, ports, local, remote) ?? takeCollected(this.closedCollectedBefore, ports, local, remote);
      if (entry) return dataCounters(entry, connected);
      if (look === 'after-collect' && this.closedCollectComplete) return undefined;
    }
    if (look === 'collected') return undefined;
    const key = this.closedKey;
    for (let k = 0; k < 4; k++) {
      key.writeUInt32BE(local[k]!, 4 * k);
      key.writeUInt32BE(remote[k]!, 16 + 4 * k);
    }
    key.writeUInt32LE(0, 32);
    key.writeUInt16BE(remotePort, 34); // the context's remote_port word: network order, upper half
    key.writeUInt32LE(localPort, 36);
    this.closedAttr.writeUInt32LE(this.closedMap, 0);
    if (bpf(CMD.MAP_LOOKUP_ELEM, this.closedAttr) < 0) return undefined;
    return dataCounters({
      received: Number(this.closedValue.readBigUInt64LE(0)),
      acked: Number(this.closedValue.readBigUInt64LE(8)),
      left: this.closedValue.readUInt32LE(16),
    }, connected);
  }

  /** Whether what `collectClosed` read holds a socket with these ports: a cheap first test before
   *  the addresses are parsed for `closedCounters(…, 'collected')`. */
  collectedPorts(localPort: number, remotePort: number): boolean {
    if (!this.closedCollected) return false;
    const ports = closedPortsKey(localPort, remotePort);
    return this.closedCollected.has(ports) || this.closedCollectedBefore.has(ports);
  }

  /** Takes every entry of the close-counters map into this process with one syscall per 4,096
   *  (BPF_MAP_LOOKUP_AND_DELETE_BATCH), instead of one lookup per ended flow. Entries are kept for
   *  two collections (a socket may close between a poll's listing and its collection) and then
   *  dropped: sockets nobody asked about. Returns the ports of those read (the sockets that closed
   *  since the last call); undefined when the kernel cannot (older than 5.6, or no map):
   *  `closedCounters` then asks the map for each flow. */
  collectClosed(): ClosedSocketPorts[] | undefined {
    if (this.closedMap < 0 || this.closedBatchRefused) return undefined;
    const batch = this.closedBatch ??= new ClosedBatchBuffers();
    const collected: ClosedByPorts = new Map();
    const fresh: ClosedSocketPorts[] = [];
    const attr = batch.attr;
    let complete = true;
    attr.writeUInt32LE(this.closedMap, 36);
    for (let first = true; ; first = false) {
      attr.writeBigUInt64LE(first ? 0n : batch.inAddress, 0);
      attr.writeUInt32LE(CLOSED_BATCH, 32);
      const r = bpf(CMD.MAP_LOOKUP_AND_DELETE_BATCH, attr);
      const done = r < 0 && -r === constants.errno.ENOENT; // the last entries (count may be > 0)
      if (r < 0 && !done) {
        if (first && this.closedCollected === undefined) {
          this.closedBatchRefused = true; // the kernel has no batch operations for this map
          return undefined;
        }
        complete = false; // keep what was read; the rest stays in the map, asked for one by one
        break;
      }
      const count = attr.readUInt32LE(32);
      const keys = batch.keys;
      const values = batch.values;
      for (let i = 0; i < count; i++) {
        const k = i * CLOSED_KEY_BYTES;
        const v = i * CLOSED_VALUE_BYTES;
        const entry: ClosedEntry = {
          local: [keys.readUInt32BE(k), keys.readUInt32BE(k + 4), keys.readUInt32BE(k + 8), keys.readUInt32BE(k + 12)],
          remote: [keys.readUInt32BE(k + 16), keys.readUInt32BE(k + 20), keys.readUInt32BE(k + 24), keys.readUInt32BE(k + 28)],
          localPort: keys.readUInt32LE(k + 36),
          remotePort: keys.readUInt16BE(k + 34),
          received: Number(values.readBigUInt64LE(v)),
          acked: Number(values.readBigUInt64LE(v + 8)),
          left: values.readUInt32LE(v + 16),
        };
        fresh.push(entry);
        const ports = closedPortsKey(entry.localPort, entry.remotePort);
        const same = collected.get(ports);
        if (same) same.push(entry);
        else collected.set(ports, [entry]);
      }
      if (done || count === 0) break;
      batch.outBatch.copy(batch.inBatch);
    }
    this.closedCollectedBefore = this.closedCollected ?? new Map();
    this.closedCollected = collected;
    this.closedCollectComplete = complete;
    return fresh;
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
