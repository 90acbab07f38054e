// Exact sock_diag lookups: one request names one 4-tuple and the kernel answers with that socket alone
// (~1.5 µs, flat however many sockets exist) — never a dump of the whole hash. Also SOCK_DESTROY, which
// makes a blocked program's connect() fail at once instead of waiting for a timeout.
// The one implementation of the exact lookup: the agent's attribution and the traffic counters
// (sock-diag-dump.ts, with tcp_info) both go through `SockDiag.query`.
// Trap: for TCP the kernel runs its full input lookup, so a tuple whose connection is gone gets the
// LISTEN socket on the local port as its answer. A reply is only taken when it names the asked-for
// tuple, and a destroy carries the cookie of the socket it means, so the kernel refuses any other.
import { isIP } from 'node:net';
import {
  AF_INET, AF_INET6, NETLINK_SOCK_DIAG, NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, NLMSG_HDRLEN, NetlinkError, awaitAck,
  openNetlink, type NetlinkSocket,
} from './netlink.js';

export const SOCK_DIAG_BY_FAMILY = 20;
const SOCK_DESTROY = 21;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
const REQUEST_BYTES = 72;
const RECEIVE_TIMEOUT_MS = 1000;
const INET_DIAG_INFO = 2;
const TCP_LISTEN = 10;
const ENOENT = 2;
const ESTALE = 116;
/** inet_diag_msg fields, offsets from the start of the netlink message. */
const REPLY = { state: 17, sport: 20, dport: 22, src: 24, dst: 40, cookie: 60, uid: 80, inode: 84, end: 88 } as const;

export type DiagProtocol = 'tcp' | 'udp';

/** A socket's 4-tuple seen from the local socket: `local` is this machine's end. Addresses are raw
 *  network-order bytes (4 for IPv4, 16 for IPv6), as they come out of a packet. */
export interface SocketTuple {
  protocol: DiagProtocol;
  local: { address: Buffer; port: number };
  remote: { address: Buffer; port: number };
}

export interface SocketInfo {
  /** The socket cookie, as the kernel's u64 (bpf_get_socket_cookie gives the same value). */
  cookie: bigint;
  inode: number;
  uid: number;
  /** TCP state number (1 ESTABLISHED, 2 SYN_SENT, 7 CLOSE, 10 LISTEN…). */
  state: number;
}

export interface QueryOptions {
  /** Ask for tcp_info (INET_DIAG_INFO) too: the byte counters. TCP only. */
  counters?: boolean;
  /** Accept the LISTEN socket on the local port (an inbound SYN has no socket of its own yet: its
   *  owner is the listener). Never for a destroy. */
  listener?: boolean;
}

/** Whether an inet_diag_msg payload (after the nlmsghdr, at `at` in `b`) names the socket of `tuple`.
 *  A UDP socket that is not connected, or bound to the wildcard address, matches with its zero fields.
 *  A TCP LISTEN socket only matches when `listener` is set, and then by its local port. */
export function replyNamesTuple(b: Buffer, at: number, tuple: SocketTuple, listener = false): boolean {
  if (b.readUInt16BE(at + 4) !== tuple.local.port) return false;
  const size = tuple.local.address.length;
  const state = b[at + 1];
  if (tuple.protocol === 'tcp' && state === TCP_LISTEN) return listener;
  const remotePort = b.readUInt16BE(at + 6);
  const local = b.subarray(at + 8, at + 8 + size);
  const remote = b.subarray(at + 24, at + 24 + size);
  if (tuple.protocol === 'tcp') {
    return remotePort === tuple.remote.port && local.equals(tuple.local.address) && remote.equals(tuple.remote.address);
  }
  const zero = (x: Buffer): boolean => x.every((v) => v === 0);
  const remoteOk = (remotePort === tuple.remote.port && remote.equals(tuple.remote.address)) || (remotePort === 0 && zero(remote));
  return remoteOk && (local.equals(tuple.local.address) || zero(local));
}

/** Converts a textual IP address to the raw bytes a SocketTuple carries. */
export function addressBytes(address: string): Buffer {
  const kind = isIP(address);
  if (kind === 4) return Buffer.from(address.split('.').map((p) => Number(p)));
  if (kind !== 6) throw new Error(`not an IP address: ${address}`);
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const groups = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const b = addressBytes(part);
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else out.push(parseInt(part, 16));
    }
    return out;
  };
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

export class SockDiag {
  private readonly nl: NetlinkSocket;
  private readonly request = Buffer.alloc(REQUEST_BYTES);
  // one inet_diag_msg (72 bytes) + tcp_info (~250) when asked, with room
  private readonly reply = Buffer.alloc(4096);
  private seq = 1;

  constructor() {
    this.nl = openNetlink(NETLINK_SOCK_DIAG, { receiveTimeoutMs: RECEIVE_TIMEOUT_MS });
  }

  /** The socket with exactly this tuple, or undefined when none exists (ENOENT, or the kernel answered
   *  with another socket). Throws other errors. */
  lookup(tuple: SocketTuple, options: { listener?: boolean } = {}): SocketInfo | undefined {
    const at = this.query(tuple, options);
    if (at < 0) return undefined;
    const r = this.reply;
    return {
      state: r.readUInt8(at + 1),
      cookie: r.readBigUInt64LE(at + REPLY.cookie - NLMSG_HDRLEN),
      uid: r.readUInt32LE(at + REPLY.uid - NLMSG_HDRLEN),
      inode: r.readUInt32LE(at + REPLY.inode - NLMSG_HDRLEN),
    };
  }

  /** The reply payload (inet_diag_msg and its attributes) for exactly this tuple, or undefined. The
   *  buffer is reused by the next call: parse it before calling again. */
  lookupPayload(tuple: SocketTuple, options: QueryOptions = {}): Buffer | undefined {
    const at = this.query(tuple, options);
    if (at < 0) return undefined;
    return this.reply.subarray(at, at - NLMSG_HDRLEN + this.reply.readUInt32LE(at - NLMSG_HDRLEN));
  }

  /** One exact request; the offset in `reply` of the payload naming `tuple`, or -1. Reads in place
   *  (this runs for every queued packet), with the bounds checks of parseMessages. */
  private query(tuple: SocketTuple, options: QueryOptions): number {
    this.fill(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, tuple, options.counters === true && tuple.protocol === 'tcp');
    const seq = this.seq;
    this.nl.send(this.request);
    const r = this.reply;
    for (;;) {
      const n = this.nl.receive(r);
      if (n < 0) throw new NetlinkError('sock_diag lookup (no reply)', 110 /* ETIMEDOUT */);
      for (let at = 0; at + NLMSG_HDRLEN <= n;) {
        const len = r.readUInt32LE(at);
        if (len < NLMSG_HDRLEN || at + len > n) break;
        if (r.readUInt32LE(at + 8) === seq) {
          const type = r.readUInt16LE(at + 4);
          if (type === NLMSG_ERROR) {
            const errno = len >= NLMSG_HDRLEN + 4 ? -r.readInt32LE(at + NLMSG_HDRLEN) : 5;
            if (errno === ENOENT) return -1;
            throw new NetlinkError('sock_diag lookup', errno);
          }
          if (type !== SOCK_DIAG_BY_FAMILY || len < REPLY.end) throw new NetlinkError('sock_diag lookup (short reply)', 71 /* EPROTO */);
          return replyNamesTuple(r, at + NLMSG_HDRLEN, tuple, options.listener === true) ? at + NLMSG_HDRLEN : -1;
        }
        at += (len + 3) & ~3; // a late answer to an earlier request: skip it
      }
    }
  }

  /** Destroys the socket with this tuple (SOCK_DESTROY): its owner sees ECONNABORTED at once.
   *  `cookie` names the socket meant (from an earlier lookup); without it the socket is looked up
   *  first. Either way the kernel destroys that socket only — never the listener it would otherwise
   *  fall back to. Returns false when no such socket exists; throws on other errors (EOPNOTSUPP
   *  without CONFIG_INET_DIAG_DESTROY, EPERM without CAP_NET_ADMIN). */
  destroy(tuple: SocketTuple, cookie?: bigint): boolean {
    if (cookie === undefined) {
      const info = this.lookup(tuple);
      if (!info) return false;
      cookie = info.cookie;
    }
    this.fill(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, tuple, false, cookie);
    this.nl.send(this.request);
    const errno = awaitAck(this.nl, this.reply, this.seq, 'sock_diag destroy', RECEIVE_TIMEOUT_MS);
    if (errno === 0) return true;
    // ESTALE: a socket with that tuple exists but has another cookie (not the one meant)
    if (errno === ENOENT || errno === ESTALE) return false;
    throw new NetlinkError('sock_diag destroy', errno);
  }

  close(): void {
    this.nl.close();
  }

  private fill(type: number, flags: number, tuple: SocketTuple, counters: boolean, cookie?: bigint): void {
    const r = this.request;
    const v6 = tuple.local.address.length === 16;
    if (!v6 && tuple.local.address.length !== 4) throw new Error('SocketTuple address must be 4 or 16 bytes');
    if (tuple.remote.address.length !== tuple.local.address.length) throw new Error('SocketTuple addresses of different families');
    r.fill(0);
    this.seq = (this.seq + 1) >>> 0 || 1;
    r.writeUInt32LE(REQUEST_BYTES, 0);
    r.writeUInt16LE(type, 4);
    r.writeUInt16LE(flags, 6);
    r.writeUInt32LE(this.seq, 8);
    r.writeUInt8(v6 ? AF_INET6 : AF_INET, 16);
    r.writeUInt8(tuple.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, 17);
    r.writeUInt8(counters ? 1 << (INET_DIAG_INFO - 1) : 0, 18);
    r.writeUInt32LE(0xffffffff, 20);
    // TCP: the socket's own end is the source. UDP is looked up in the receive direction (the kernel
    // runs its input lookup): the remote end goes first, or a different socket is silently found.
    const [first, second] = tuple.protocol === 'tcp' ? [tuple.local, tuple.remote] : [tuple.remote, tuple.local];
    r.writeUInt16BE(first.port, 24);
    r.writeUInt16BE(second.port, 26);
    first.address.copy(r, 28);
    second.address.copy(r, 44);
    if (cookie === undefined) {
      r.writeUInt32LE(0xffffffff, 64); // "no cookie": with 0 the kernel compares cookies and finds nothing
      r.writeUInt32LE(0xffffffff, 68);
    } else {
      r.writeBigUInt64LE(cookie, 64); // the kernel refuses (ESTALE) a socket with another cookie
    }
  }
}
