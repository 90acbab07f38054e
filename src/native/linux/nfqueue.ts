// NFQUEUE spoken directly over AF_NETLINK / NETLINK_NETFILTER through koffi.
//
// Why raw netlink and not libnetfilter_queue: the protocol we need is four message shapes (config,
// packet, verdict, error) that this file builds and parses with bounds checks; libnetfilter_queue
// would add a C library that is not installed by default, a callback API (nfq_handle_packet calls back
// into JS for every packet, which koffi must marshal across threads from a worker), and its own
// buffer handling — all to save ~150 lines. Raw netlink also lets several verdicts share one send().
import {
  NETLINK_NETFILTER, NLM_F_ACK, NLM_F_REQUEST, NetlinkError, align4, awaitAck, buildAttribute,
  openNetlink, u32BE, type NetlinkSocket,
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
  private verdictBuffer = Buffer.alloc(16 * VERDICT_BYTES);

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
    const errno = awaitAck(this.nl, this.buffer, seq, 'NFQUEUE config', 2000);
    if (errno !== 0) throw new NetlinkError('NFQUEUE config', errno);
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

  /** How long `receive` waits from now on (e.g. shorter while something waits to be posted). */
  setReceiveTimeout(ms: number): void {
    this.nl.setReceiveTimeout(ms);
  }

  /** Waits for the next datagram and returns the packets in it ([] on timeout). Non-packet messages
   *  (errors for verdicts of packets the kernel already let go) are skipped. Parsed in place (this runs
   *  for every queued packet): the same bounds checks as parseMessages/parseAttributes, no maps. */
  receive(dontWait = false): QueuedPacket[] | undefined {
    const n = this.nl.receive(this.buffer, dontWait ? 0x40 : 0);
    if (n < 0) return undefined;
    const b = this.buffer;
    const out: QueuedPacket[] = [];
    for (let at = 0; at + 16 <= n;) {
      const len = b.readUInt32LE(at);
      if (len < 16 || at + len > n) break;
      if (b.readUInt16LE(at + 4) === MSG_PACKET) {
        const packet = parsePacketMessage(b, at + 16 + NFGEN_BYTES, at + len);
        if (packet) out.push(packet);
      }
      at += align4(len);
    }
    return out;
  }

  /** Sends several verdicts in one datagram: the kernel handles each message in turn. The datagram is
   *  built in a buffer kept for the purpose. */
  sendVerdicts(verdicts: readonly Verdict[]): void {
    if (verdicts.length === 0) return;
    const bytes = verdicts.length * VERDICT_BYTES;
    if (this.verdictBuffer.length < bytes) this.verdictBuffer = Buffer.alloc(Math.max(bytes, this.verdictBuffer.length * 2));
    for (let i = 0; i < verdicts.length; i++) writeVerdict(this.verdictBuffer, i * VERDICT_BYTES, this.options.queueNum, verdicts[i]!);
    this.nl.send(bytes === this.verdictBuffer.length ? this.verdictBuffer : this.verdictBuffer.subarray(0, bytes));
  }

  close(): void {
    try {
      const b = Buffer.alloc(4);
      b.writeUInt8(NFQNL_CFG_CMD_UNBIND, 0);
      this.nl.send(message(MSG_CONFIG, NLM_F_REQUEST, ++this.seq, [nfgen(0, this.options.queueNum), buildAttribute(NFQA_CFG_CMD, b)]));
    } catch (error) {
      // the kernel refused the unbind (or the socket is closed already): closing the socket unbinds too
      if (!(error instanceof NetlinkError)) throw error;
    }
    this.nl.close();
  }
}

export interface Verdict {
  id: number;
  verdict: number;
}

/** One verdict message: nlmsghdr (16) + nfgenmsg (4) + NFQA_VERDICT_HDR attribute (4 + 8). */
const VERDICT_BYTES = 32;

function writeVerdict(out: Buffer, at: number, queueNum: number, { id, verdict }: Verdict): void {
  out.writeUInt32LE(VERDICT_BYTES, at);
  out.writeUInt16LE(MSG_VERDICT, at + 4);
  out.writeUInt16LE(NLM_F_REQUEST, at + 6);
  out.writeUInt32LE(0, at + 8); // seq
  out.writeUInt32LE(0, at + 12); // port id: the kernel
  out.writeUInt8(0, at + 16); // AF_UNSPEC
  out.writeUInt8(0, at + 17); // NFNETLINK_V0
  out.writeUInt16BE(queueNum, at + 18);
  out.writeUInt16LE(12, at + 20);
  out.writeUInt16LE(NFQA_VERDICT_HDR, at + 22);
  out.writeUInt32BE(verdict >>> 0, at + 24);
  out.writeUInt32BE(id >>> 0, at + 28);
}

/** Verdict messages for `queueNum`, concatenated into one datagram (any thread may send it on the
 *  queue's fd: the kernel checks the sending socket's port id, not the thread). */
export function encodeVerdicts(queueNum: number, verdicts: readonly Verdict[]): Buffer {
  const out = Buffer.alloc(verdicts.length * VERDICT_BYTES);
  for (let i = 0; i < verdicts.length; i++) writeVerdict(out, i * VERDICT_BYTES, queueNum, verdicts[i]!);
  return out;
}

/** The packet in an NFQNL_MSG_PACKET whose attributes span [from, end) of `b`, or undefined when it
 *  has no usable packet header (nothing to answer with: the kernel's queue timeout applies). Attributes
 *  whose length runs past the end stop parsing; the last occurrence of an attribute wins. */
function parsePacketMessage(b: Buffer, from: number, end: number): QueuedPacket | undefined {
  let hdr = -1;
  let payloadAt = -1;
  let payloadEnd = -1;
  let uid: number | undefined;
  let gid: number | undefined;
  for (let at = from; at + 4 <= end;) {
    const len = b.readUInt16LE(at);
    if (len < 4 || at + len > end) break;
    const type = b.readUInt16LE(at + 2) & 0x3fff;
    const body = at + 4;
    const size = len - 4;
    if (type === NFQA_PACKET_HDR) hdr = size >= 7 ? body : -1;
    else if (type === NFQA_PAYLOAD) { payloadAt = body; payloadEnd = body + size; }
    else if (type === NFQA_UID) uid = size >= 4 ? b.readUInt32BE(body) : undefined;
    else if (type === NFQA_GID) gid = size >= 4 ? b.readUInt32BE(body) : undefined;
    at += align4(len);
  }
  if (hdr < 0) return undefined;
  const packet: QueuedPacket = {
    id: b.readUInt32BE(hdr),
    hwProtocol: b.readUInt16BE(hdr + 4),
    hook: b.readUInt8(hdr + 6),
    payload: payloadAt >= 0 ? b.subarray(payloadAt, payloadEnd) : EMPTY,
  };
  if (uid !== undefined) packet.uid = uid;
  if (gid !== undefined) packet.gid = gid;
  return packet;
}

const EMPTY = Buffer.alloc(0);
