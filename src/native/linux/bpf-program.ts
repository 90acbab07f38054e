// The recorder's BPF program, assembled here instruction by instruction (no compiler at run time):
// at connect, UDP sendmsg and socket creation it stores socket cookie -> (pid_tgid, boot ns) and, where
// the kernel describes itself (BTF), the connecting process instance read from task_struct.
import { loadKernelBtf, type Btf } from './btf.js';

const HELPER = { map_update_elem: 2, get_current_pid_tgid: 14, get_current_task: 35, get_socket_cookie: 46, probe_read_kernel: 113, ktime_get_boot_ns: 125 } as const;
/** Bytes of a record: pid_tgid, boot ns, then (zero when not read) start_boottime, self_exec_id and
 *  pidfs inode of the thread-group leader, and the address of the running executable's struct file
 *  with its inode number and its file system's device number. */
export const RECORD_BYTES = 64;

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
const jneImm = (dst: number, imm: number, off: number): Insn => [0x55, dst, 0, off, imm];
const jeqReg = (dst: number, src: number, off: number): Insn => [0x1d, dst, src, off, 0];
const jneReg = (dst: number, src: number, off: number): Insn => [0x5d, dst, src, off, 0];
const andImm = (dst: number, imm: number): Insn => [0x57, dst, 0, 0, imm];
const ja = (off: number): Insn => [0x05, 0, 0, off, 0];
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

// ---- the close-counters program (sock_ops) ----

const SOCK_OPS = { activeEstablished: 4, passiveEstablished: 5, stateCallback: 10 } as const;
const STATE_CB_FLAG = 4;
const HELPER_SOCK_OPS_CB_FLAGS_SET = 59;
const TCP_CLOSE = 7;
const AF_INET = 2;
/** Bytes of a closed-socket key: local address (16; IPv4 as ::ffff:a.b.c.d), remote address (16),
 *  the context's remote_port word (the port in network order in its upper two bytes) and
 *  local_port word (host order). Value: bytes received, bytes acked (u64 each), the state it left
 *  for CLOSE (u32; the FIN and SYN take a sequence number each, and which of them the counters hold
 *  follows from it), 4 bytes of padding, and when it closed (CLOCK_BOOTTIME ns, u64). */
export const CLOSED_KEY_BYTES = 40;
export const CLOSED_VALUE_BYTES = 32;
// struct bpf_sock_ops (uapi): op 0, args[0..3] 4..19, family 20, remote_ip4 24, local_ip4 28,
// remote_ip6 32, local_ip6 48, remote_port 64, local_port 68, bytes_received 168, bytes_acked 176.
const CLOSED_KEY = -40;
const CLOSED_VALUE = -72;

/** A TCP socket's final counters, as it closes: at its establishment the program asks for state
 *  callbacks; at the change to CLOSE it stores tuple → (bytes received, bytes acked, when) in `map`. A flow
 *  that ends between two polls of sock_diag (a quick download) then still has its bytes. */
export function closeCountersProgram(map: number): Buffer {
  const exitOk: Insn[] = [movImm(R0, 1), exit()];
  const flags: Insn[] = [movReg(R1, R6), movImm(R2, STATE_CB_FLAG), call(HELPER_SOCK_OPS_CB_FLAGS_SET), ...exitOk];
  const v4: Insn[] = [
    stW(R10, CLOSED_KEY, 0), stW(R10, CLOSED_KEY + 4, 0), stW(R10, CLOSED_KEY + 8, -65536), ldxW(R2, R6, 28), stxW(R10, CLOSED_KEY + 12, R2),
    stW(R10, CLOSED_KEY + 16, 0), stW(R10, CLOSED_KEY + 20, 0), stW(R10, CLOSED_KEY + 24, -65536), ldxW(R2, R6, 24), stxW(R10, CLOSED_KEY + 28, R2),
  ];
  const v6: Insn[] = [0, 1, 2, 3].flatMap((i): Insn[] => [
    ldxW(R2, R6, 48 + 4 * i), stxW(R10, CLOSED_KEY + 4 * i, R2),
    ldxW(R2, R6, 32 + 4 * i), stxW(R10, CLOSED_KEY + 16 + 4 * i, R2),
  ]);
  const store: Insn[] = [
    ldxW(R2, R6, 64), stxW(R10, CLOSED_KEY + 32, R2),
    ldxW(R2, R6, 68), stxW(R10, CLOSED_KEY + 36, R2),
    ldxDW(R2, R6, 168), stxDW(R10, CLOSED_VALUE, R2),
    ldxDW(R2, R6, 176), stxDW(R10, CLOSED_VALUE + 8, R2),
    ldxW(R2, R6, 4), stxW(R10, CLOSED_VALUE + 16, R2), stW(R10, CLOSED_VALUE + 20, 0),
    call(HELPER.ktime_get_boot_ns), stxDW(R10, CLOSED_VALUE + 24, R0),
    ...ldMap(R1, map),
    movReg(R2, R10), addImm(R2, CLOSED_KEY),
    movReg(R3, R10), addImm(R3, CLOSED_VALUE),
    movImm(R4, 0),
    call(HELPER.map_update_elem),
    ...exitOk,
  ];
  // family: v4 then a jump over v6, else v6
  const addresses: Insn[] = [
    ldxW(R2, R6, 20), jneImm(R2, AF_INET, v4.length + 1), ...v4, ja(v6.length), ...v6,
  ];
  const state: Insn[] = [ldxW(R2, R6, 8), jneImm(R2, TCP_CLOSE, addresses.length + store.length), ...addresses, ...store, ...exitOk];
  // The accepted end of a connection from this machine to itself gets no callbacks: the agent judges
  // such a connection by its connecting end (loopback is never queued inbound), and recording both
  // ends would double what the agent reads for every local connection. Its ends have the same
  // address, or (IPv4) the peer is in 127/8.
  const sameV6: Insn[] = [0, 1, 2, 3].flatMap((k): Insn[] => [
    ldxW(R2, R6, 32 + 4 * k), ldxW(R3, R6, 48 + 4 * k), jneReg(R2, R3, 3 * (3 - k) + exitOk.length),
  ]);
  const local: Insn[] = [
    ldxW(R2, R6, 20), jneImm(R2, AF_INET, 6),
    ldxW(R2, R6, 24), ldxW(R3, R6, 28), jeqReg(R2, R3, sameV6.length + 3),
    andImm(R2, 0xff), jeqImm(R2, 127, sameV6.length + 1), ja(sameV6.length + exitOk.length),
    // the same address: no callbacks
    ...sameV6, ...exitOk,
  ];
  const insns: Insn[] = [
    movReg(R6, R1),
    ldxW(R2, R6, 0),
    jeqImm(R2, SOCK_OPS.stateCallback, 2 + exitOk.length + local.length + flags.length),
    jeqImm(R2, SOCK_OPS.activeEstablished, 1 + exitOk.length + local.length),
    jeqImm(R2, SOCK_OPS.passiveEstablished, exitOk.length),
    ...exitOk,
    ...local,
    ...flags,
    ...state,
  ];
  return encode(insns);
}
