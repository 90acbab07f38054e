// A netlink socket through the one koffi libc binding, and builders/parsers for nlmsghdr and nlattr.
// Everything read from the kernel is length-checked: a malformed message ends parsing of that buffer
// instead of reading past its end. Used by sock_diag (exact lookup and dump) and NFQUEUE.
import { libc, errnoName } from './libc.js';

export const AF_NETLINK = 16;
/** Address families in the requests that name an IP socket or flow (sock_diag, ctnetlink). */
export const AF_INET = 2;
export const AF_INET6 = 10;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_SOCK_DIAG = 4;
export const NETLINK_NETFILTER = 12;

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;
const NETLINK_EXT_ACK = 11;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
/** nla_type carries two flag bits; the attribute number is the rest. */
export const NLA_TYPE_MASK = 0x3fff;
export const NLA_F_NESTED = 0x8000;

export const MSG_DONTWAIT = 0x40;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** A failed netlink call, with the errno kept so callers can tell ENOENT from EPERM. */
export class NetlinkError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${errnoName(errno)}`);
    this.name = 'NetlinkError';
  }
  get code(): string {
    return errnoName(this.errno);
  }
}

export interface NetlinkOptions {
  /** Receive buffer in bytes (SO_RCVBUFFORCE when root, else SO_RCVBUF). */
  receiveBuffer?: number;
  sendBuffer?: number;
  /** Ask the kernel not to report ENOBUFS when the receive buffer overflows (NFQUEUE: the queue's
   *  own fail-open/closed setting decides what happens to the overflowing packets instead). */
  noEnobufs?: boolean;
  /** recv() returns EAGAIN after this long, so a blocking reader can check whether to stop. */
  receiveTimeoutMs?: number;
}

export interface NetlinkSocket {
  readonly fd: number;
  readonly portId: number;
  /** Sends one buffer (one or more netlink messages) to the kernel. Throws NetlinkError. */
  send(message: Buffer): void;
  /** Receives one datagram into `into`; returns its length, or -1 on EAGAIN/EINTR (timeout). Throws others. */
  receive(into: Buffer, flags?: number): number;
  /** How long a blocking receive waits before it returns -1 (at least 1 ms). Throws NetlinkError. */
  setReceiveTimeout(ms: number): void;
  close(): void;
}

function setIntOption(fd: number, level: number, name: number, value: number): boolean {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  return libc().setsockopt(fd, level, name, v, 4) === 0;
}

/** Opens and binds a netlink socket of `protocol` (NETLINK_SOCK_DIAG, NETLINK_NETFILTER…). */
export function openNetlink(protocol: number, options: NetlinkOptions = {}): NetlinkSocket {
  const c = libc();
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw new NetlinkError('socket(AF_NETLINK)', c.errno());
  try {
    if (options.receiveBuffer !== undefined) {
      if (!setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, options.receiveBuffer)) {
        setIntOption(fd, SOL_SOCKET, SO_RCVBUF, options.receiveBuffer);
      }
    }
    if (options.sendBuffer !== undefined) setIntOption(fd, SOL_SOCKET, SO_SNDBUF, options.sendBuffer);
    if (options.noEnobufs && !setIntOption(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)) {
      throw new NetlinkError('setsockopt(NETLINK_NO_ENOBUFS)', c.errno());
    }
    setIntOption(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
    if (options.receiveTimeoutMs !== undefined) setReceiveTimeout(fd, options.receiveTimeoutMs);
    const addr = Buffer.alloc(12);
    addr.writeUInt16LE(AF_NETLINK, 0);
    if (c.bind(fd, addr, 12) !== 0) throw new NetlinkError('bind(AF_NETLINK)', c.errno());
    const name = Buffer.alloc(12);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(12, 0);
    const portId = c.getsockname(fd, name, len) === 0 ? name.readUInt32LE(4) : 0;
    return makeSocket(fd, portId);
  } catch (error) {
    c.close(fd);
    throw error;
  }
}

/** SO_RCVTIMEO in whole ms (at least 1: 0 would mean wait forever). Throws NetlinkError. */
function setReceiveTimeout(fd: number, ms: number): void {
  const whole = Math.max(1, Math.floor(ms));
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(whole / 1000)), 0);
  tv.writeBigInt64LE(BigInt((whole % 1000) * 1000), 8);
  if (libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16) !== 0) throw new NetlinkError('setsockopt(SO_RCVTIMEO)', libc().errno());
}

const EAGAIN = 11;
const EINTR = 4;

function makeSocket(fd: number, portId: number): NetlinkSocket {
  const c = libc();
  let open = true;
  return {
    fd,
    portId,
    send(message) {
      if (!open) throw new NetlinkError('send(netlink)', 9 /* EBADF */);
      const n = c.send(fd, message, message.length, 0);
      if (n < 0) throw new NetlinkError('send(netlink)', c.errno());
    },
    receive(into, flags = 0) {
      if (!open) throw new NetlinkError('recv(netlink)', 9);
      const n = c.recv(fd, into, into.length, flags);
      if (n >= 0) return n;
      const errno = c.errno();
      if (errno === EAGAIN || errno === EINTR) return -1;
      throw new NetlinkError('recv(netlink)', errno);
    },
    setReceiveTimeout(ms) {
      if (!open) throw new NetlinkError('setsockopt(SO_RCVTIMEO)', 9);
      setReceiveTimeout(fd, ms);
    },
    close() {
      if (!open) return;
      open = false;
      c.close(fd);
    },
  };
}

// ---- building ----

/** One attribute: header + payload, padded to 4 bytes. */
export function buildAttribute(type: number, payload: Buffer): Buffer {
  const len = NLA_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, NLA_HDRLEN);
  return out;
}

export function u32BE(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0, 0);
  return b;
}

export function u16BE(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value & 0xffff, 0);
  return b;
}

/** A whole message: nlmsghdr + payload (already padded parts). */
export function buildMessage(type: number, flags: number, seq: number, ...parts: Buffer[]): Buffer {
  const body = parts.reduce((n, p) => n + p.length, 0);
  const out = Buffer.alloc(NLMSG_HDRLEN + align4(body));
  out.writeUInt32LE(NLMSG_HDRLEN + body, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq >>> 0, 8);
  out.writeUInt32LE(0, 12);
  let at = NLMSG_HDRLEN;
  for (const p of parts) {
    p.copy(out, at);
    at += p.length;
  }
  return out;
}

// ---- parsing ----

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  portId: number;
  /** The bytes after the header, a view into the receive buffer (copy before the next receive). */
  payload: Buffer;
}

/** Splits a received datagram into messages. Stops at the first header whose length is impossible. */
export function parseMessages(buf: Buffer, length: number = buf.length): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  const end = Math.min(length, buf.length);
  let at = 0;
  while (at + NLMSG_HDRLEN <= end) {
    const len = buf.readUInt32LE(at);
    if (len < NLMSG_HDRLEN || at + len > end) break;
    out.push({
      type: buf.readUInt16LE(at + 4),
      flags: buf.readUInt16LE(at + 6),
      seq: buf.readUInt32LE(at + 8),
      portId: buf.readUInt32LE(at + 12),
      payload: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** The errno of an NLMSG_ERROR payload (0 is an ACK), or undefined when the payload is too short. */
export function errorCode(message: NetlinkMessage): number | undefined {
  if (message.type !== NLMSG_ERROR || message.payload.length < 4) return undefined;
  return -message.payload.readInt32LE(0);
}

/** Waits on `nl` for the kernel's answer (NLMSG_ERROR) to request `seq` and returns its errno (0: an
 *  ACK); other messages (late answers to earlier requests) are skipped. Throws NetlinkError ETIMEDOUT
 *  when none has come within `timeoutMs` (each receive also ends at the socket's own timeout). */
export function awaitAck(nl: NetlinkSocket, buffer: Buffer, seq: number, call: string, timeoutMs: number): number {
  const deadline = Date.now() + timeoutMs;
  do {
    const n = nl.receive(buffer);
    if (n < 0) continue;
    for (const m of parseMessages(buffer, n)) if (m.type === NLMSG_ERROR && m.seq === seq) return errorCode(m) ?? 5 /* EIO */;
  } while (Date.now() < deadline);
  throw new NetlinkError(`${call} (no answer)`, 110 /* ETIMEDOUT */);
}

/** Attributes from `offset` to the end of `buf`, by attribute number (flags masked off). The last
 *  occurrence wins; attributes whose length runs past the end stop parsing. */
export function parseAttributes(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let at = offset;
  while (at + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(at);
    if (len < NLA_HDRLEN || at + len > buf.length) break;
    out.set(buf.readUInt16LE(at + 2) & NLA_TYPE_MASK, buf.subarray(at + NLA_HDRLEN, at + len));
    at += align4(len);
  }
  return out;
}
