// NFQUEUE spoken directly over AF_NETLINK / NETLINK_NETFILTER through koffi.
//
// Why raw netlink and not libnetfilter_queue: the protocol we need is four message shapes (config,
// packet, verdict, error) that this file builds and parses with bounds checks; libnetfilter_queue
// would add a C library that is not installed by default, a callback API (nfq_handle_packet calls back
// into JS for every packet, which koffi must marshal across threads from a worker), and its own
// buffer handling — all to save ~150 lines. Raw netlink also lets several verdicts share one send().
import {
  NETLINK_NETFILTER, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST, NetlinkError, align4, buildAttribute,
  errorCode, openNetlink, parseAttributes, parseMessages, u32BE, type NetlinkSocket,
} from './netlink.js';

const NFNL_SUBSYS_QUEUE = 3;
const NFQNL_MSG_PACKET = 0;
const NFQNL_MSG_VERDICT = 1;
const NFQNL_MSG_CONFIG = 2;
const MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
const MSG_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
const MSG_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;

const NFQA_PACKET_HDR = 1;
const NFQA_VERDICT_HDR = 2;
const NFQA_PAYLOAD = 10;
const NFQA_UID = 16;
const NFQA_GID = 17;
const NFQA_CFG_CMD = 1;
const NFQA_CFG_PARAMS = 2;
const NFQA_CFG_QUEUE_MAXLEN = 3;
const NFQA_CFG_MASK = 4;
const NFQA_CFG_FLAGS = 5;
const NFQNL_CFG_CMD_BIND = 1;
const NFQNL_CFG_CMD_UNBIND = 2;
const NFQNL_COPY_PACKET = 2;
export const NFQA_CFG_F_FAIL_OPEN = 1 << 0;
export const NFQA_CFG_F_UID_GID = 1 << 3;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

const NFGEN_BYTES = 4;

export interface QueuedPacket {
  id: number;
  /** 0x0800 IPv4, 0x86dd IPv6 (hw_protocol of the packet header). */
  hwProtocol: number;
  hook: number;
  /** The packet from its IP header, at most `copyRange` bytes; a view (copy before the next receive). */
  payload: Buffer;
  /** The sending socket's UID/GID when the kernel knows them (NFQA_CFG_F_UID_GID). */
  uid?: number;
  gid?: number;
}

export interface QueueOptions {
  queueNum: number;
  /** Bytes of each packet copied to us: IP + transport headers are all we read. */
  copyRange?: number;
  maxLength?: number;
  /** When our receive buffer or the queue is full, accept (true) or drop (false) the overflow. */
  failOpen: boolean;
  receiveBuffer?: number;
  receiveTimeoutMs?: number;
}

function nfgen(family: number, resId: number): Buffer {
  const b = Buffer.alloc(NFGEN_BYTES);
  b.writeUInt8(family, 0);
  b.writeUInt8(0, 1); // NFNETLINK_V0
  b.writeUInt16BE(resId, 2);
  return b;
}

function message(type: number, flags: number, seq: number, body: Buffer[]): Buffer {
  const len = 16 + body.reduce((n, p) => n + p.length, 0);
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq >>> 0, 8);
  let at = 16;
  for (const p of body) at += p.copy(out, at);
  return out;
}

/** A bound NFQUEUE. `receive` blocks (up to receiveTimeoutMs); `verdicts` may be called from any
 *  thread of the process that holds the fd, since the kernel checks the sending socket, not the thread. */
export class NfQueue {
  readonly nl: NetlinkSocket;
  private seq = 1;
  private readonly buffer = Buffer.alloc(256 * 1024);

  constructor(readonly options: QueueOptions) {
    this.nl = openNetlink(NETLINK_NETFILTER, {
      receiveBuffer: options.receiveBuffer ?? 8 * 1024 * 1024,
      noEnobufs: true,
      receiveTimeoutMs: options.receiveTimeoutMs ?? 250,
    });
    try {
      this.bind();
    } catch (error) {
      this.nl.close();
      throw error;
    }
  }

  private configure(attrs: Buffer[]): void {
    const seq = ++this.seq;
    this.nl.send(message(MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, [nfgen(0, this.options.queueNum), ...attrs]));
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      const n = this.nl.receive(this.buffer);
      if (n < 0) continue;
      for (const m of parseMessages(this.buffer, n)) {
        if (m.type !== NLMSG_ERROR || m.seq !== seq) continue;
        const errno = errorCode(m) ?? 5;
        if (errno !== 0) throw new NetlinkError('NFQUEUE config', errno);
        return;
      }
    }
    throw new NetlinkError('NFQUEUE config (no answer)', 110);
  }

  private bind(): void {
    const cmd = (command: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt8(command, 0);
      b.writeUInt16BE(0, 2);
      return buildAttribute(NFQA_CFG_CMD, b);
    };
    this.configure([cmd(NFQNL_CFG_CMD_BIND)]);
    const params = Buffer.alloc(5);
    params.writeUInt32BE(this.options.copyRange ?? 128, 0);
    params.writeUInt8(NFQNL_COPY_PACKET, 4);
    const flags = NFQA_CFG_F_UID_GID | (this.options.failOpen ? NFQA_CFG_F_FAIL_OPEN : 0);
    this.configure([
      buildAttribute(NFQA_CFG_PARAMS, params),
      buildAttribute(NFQA_CFG_QUEUE_MAXLEN, u32BE(this.options.maxLength ?? 65536)),
      buildAttribute(NFQA_CFG_MASK, u32BE(NFQA_CFG_F_UID_GID | NFQA_CFG_F_FAIL_OPEN)),
      buildAttribute(NFQA_CFG_FLAGS, u32BE(flags)),
    ]);
  }

  /** Waits for the next datagram and returns the packets in it ([] on timeout). Non-packet messages
   *  (errors for verdicts of packets the kernel already let go) are skipped. */
  receive(dontWait = false): QueuedPacket[] | undefined {
    const n = this.nl.receive(this.buffer, dontWait ? 0x40 : 0);
    if (n < 0) return undefined;
    const out: QueuedPacket[] = [];
    for (const m of parseMessages(this.buffer, n)) {
      if (m.type !== MSG_PACKET) continue;
      const attrs = parseAttributes(m.payload, NFGEN_BYTES);
      const hdr = attrs.get(NFQA_PACKET_HDR);
      const payload = attrs.get(NFQA_PAYLOAD);
      if (!hdr || hdr.length < 7) continue; // nothing to answer with: the kernel's queue timeout applies
      const uid = attrs.get(NFQA_UID);
      const gid = attrs.get(NFQA_GID);
      out.push({
        id: hdr.readUInt32BE(0),
        hwProtocol: hdr.readUInt16BE(4),
        hook: hdr.readUInt8(6),
        payload: payload ?? Buffer.alloc(0),
        ...(uid && uid.length >= 4 ? { uid: uid.readUInt32BE(0) } : {}),
        ...(gid && gid.length >= 4 ? { gid: gid.readUInt32BE(0) } : {}),
      });
    }
    return out;
  }

  /** Sends several verdicts in one datagram: the kernel handles each message in turn. */
  sendVerdicts(verdicts: readonly Verdict[]): void {
    if (verdicts.length > 0) this.nl.send(encodeVerdicts(this.options.queueNum, verdicts));
  }

  close(): void {
    try {
      const b = Buffer.alloc(4);
      b.writeUInt8(NFQNL_CFG_CMD_UNBIND, 0);
      this.nl.send(message(MSG_CONFIG, NLM_F_REQUEST, ++this.seq, [nfgen(0, this.options.queueNum), buildAttribute(NFQA_CFG_CMD, b)]));
    } catch {
      // closing the socket unbinds too
    }
    this.nl.close();
  }
}

export interface Verdict {
  id: number;
  verdict: number;
}

/** Verdict messages for `queueNum`, concatenated into one datagram (any thread may send it on the
 *  queue's fd: the kernel checks the sending socket's port id, not the thread). */
export function encodeVerdicts(queueNum: number, verdicts: readonly Verdict[]): Buffer {
  return Buffer.concat(verdicts.map(({ id, verdict }) => {
    const v = Buffer.alloc(8);
    v.writeUInt32BE(verdict, 0);
    v.writeUInt32BE(id >>> 0, 4);
    return message(MSG_VERDICT, NLM_F_REQUEST, 0, [nfgen(0, queueNum), buildAttribute(NFQA_VERDICT_HDR, v)]);
  }));
}

export interface QueueStats {
  queueNum: number;
  portId: number;
  waiting: number;
  queueDropped: number;
  userDropped: number;
  idSequence: number;
}

/** /proc/net/netfilter/nfnetlink_queue of the current network namespace, one entry per bound queue. */
export function parseQueueStats(text: string): QueueStats[] {
  const out: QueueStats[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) continue;
    out.push({ queueNum: f[0]!, portId: f[1]!, waiting: f[2]!, queueDropped: f[5]!, userDropped: f[6]!, idSequence: f[7]! });
  }
  return out;
}
