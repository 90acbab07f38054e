// sock_diag dumps of TCP and UDP sockets (no privilege needed: any user may list every socket with
// its uid and inode), with the byte counters of tcp_info, plus an exact lookup that also asks for
// tcp_info (the traffic poller's per-flow read, done by sock-diag.ts's exact lookup). Every reply is
// validated: a message that is too short or of an unknown family is skipped, an attribute running past
// its message is ignored, and an exact lookup's answer must name the tuple asked for.
import type { AddressFamily, Endpoint } from '../../protocol/messages.js';
import { formatAddress } from '../../net/address.js';
import {
  AF_INET, AF_INET6, NETLINK_SOCK_DIAG, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_OVERRUN,
  NLA_TYPE_MASK, NetlinkError, errorCode, openNetlink, parseMessages, type NetlinkSocket,
} from './netlink.js';
import { IPPROTO_TCP, IPPROTO_UDP, SOCK_DIAG_BY_FAMILY, SockDiag, type SocketTuple } from './sock-diag.js';
/** struct inet_diag_req_v2 (linux/inet_diag.h). */
const REQ_BYTES = 56;
/** struct inet_diag_msg: the fixed part of every reply, before its attributes. */
const MSG_BYTES = 72;
const INET_DIAG_INFO = 2;
/** tcp_info offsets (linux/tcp.h, checked with offsetof against linux-libc-dev 6.1):
 *  tcpi_bytes_acked (u64) at 120 and tcpi_bytes_received (u64) at 128, both since kernel 4.1. */
const TCPI_BYTES_ACKED = 120;
const TCPI_BYTES_RECEIVED = 128;
/** tcpi_bytes_sent and tcpi_bytes_retrans (u64, kernel 4.19+): data bytes only. */
const TCPI_BYTES_SENT = 200;
const TCPI_BYTES_RETRANS = 208;

export const TCP_STATE = {
  ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7,
  CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11, NEW_SYN_RECV: 12,
} as const;

/** Every TCP state but TIME_WAIT and the embryonic SYN_RECV ones: those have no owner (inode 0). */
export const TCP_OWNED_STATES = 0xffff & ~((1 << TCP_STATE.TIME_WAIT) | (1 << TCP_STATE.SYN_RECV) | (1 << TCP_STATE.NEW_SYN_RECV));
export const ALL_STATES = 0xffffffff;

export type InetProtocol = 'tcp' | 'udp';

export interface InetSocket {
  protocol: InetProtocol;
  family: AddressFamily;
  /** TCP state number; for UDP 1 (connected) or 7 (unconnected). */
  state: number;
  local: Endpoint;
  remote: Endpoint;
  uid: number;
  /** sockfs inode; 0 once the owning process has closed the socket (orphan, TIME_WAIT). */
  inode: number;
  /** The kernel's socket cookie (sock_diag only), as a number: cookies count up from 1. */
  cookie?: number;
  /** Data bytes received / sent from tcp_info (SYN and FIN not counted), when asked for. */
  rx?: number;
  tx?: number;
}

export interface DumpOptions {
  /** Bit mask of TCP states (1 << state). Default: every state. */
  states?: number;
  /** Ask for tcp_info (byte counters). TCP only; costs a little per socket. */
  counters?: boolean;
}

// The kernel counts the SYN and FIN in bytes_acked / bytes_received (they take a sequence number each):
// measured here, a client's bytes_acked is 1 before it has sent anything, and bytes_received grows by
// 1 when the peer's FIN arrives. People expect data bytes, so both are corrected.
const FIN_RECEIVED_STATES = new Set<number>([6, 8, 9, 11]); // TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING

function dataBytesReceived(info: Buffer, state: number): number {
  const received = Number(info.readBigUInt64LE(TCPI_BYTES_RECEIVED));
  return FIN_RECEIVED_STATES.has(state) ? Math.max(0, received - 1) : received;
}

/** Unique data bytes sent (bytes_sent counts retransmissions again); on kernels before 4.19,
 *  bytes_acked, which may be one high for the side that connected (its SYN). */
function dataBytesSent(info: Buffer): number {
  if (info.length >= TCPI_BYTES_RETRANS + 8) {
    return Math.max(0, Number(info.readBigUInt64LE(TCPI_BYTES_SENT) - info.readBigUInt64LE(TCPI_BYTES_RETRANS)));
  }
  return Number(info.readBigUInt64LE(TCPI_BYTES_ACKED));
}

// Text forms of recently seen addresses: a dump of 10,000 sockets names a handful of addresses many
// times, and formatting each again was a third of the parse time (bench/monitor).
const v4Names = new Map<number, string>();
const v6Names = new Map<string, string>();
const NAME_CACHE_LIMIT = 4096;

function addressAt(payload: Buffer, at: number, v4: boolean): string {
  return v4 ? named(v4Names, payload.readUInt32BE(at), payload, at, 4) : named(v6Names, payload.toString('latin1', at, at + 16), payload, at, 16);
}

/** The cached text of the `size` address bytes at `at`, formatted (and the cache bounded) on a miss. */
function named<K>(names: Map<K, string>, key: K, payload: Buffer, at: number, size: 4 | 16): string {
  let name = names.get(key);
  if (name === undefined) {
    if (names.size >= NAME_CACHE_LIMIT) names.clear();
    name = formatAddress(payload.subarray(at, at + size))!;
    names.set(key, name);
  }
  return name;
}

/** The INET_DIAG_INFO attribute of a reply, found without building a map of every attribute. */
function infoAttribute(payload: Buffer): Buffer | undefined {
  let at = MSG_BYTES;
  while (at + 4 <= payload.length) {
    const len = payload.readUInt16LE(at);
    if (len < 4 || at + len > payload.length) return undefined;
    if ((payload.readUInt16LE(at + 2) & NLA_TYPE_MASK) === INET_DIAG_INFO) return payload.subarray(at + 4, at + len);
    at += (len + 3) & ~3;
  }
  return undefined;
}

/** Parses one SOCK_DIAG_BY_FAMILY reply payload (after the nlmsghdr). Undefined when malformed. */
export function parseInetDiagMessage(payload: Buffer, protocol: InetProtocol): InetSocket | undefined {
  if (payload.length < MSG_BYTES) return undefined;
  const fam = payload[0];
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const v4 = fam === AF_INET;
  const socket: InetSocket = {
    protocol,
    family: v4 ? 'ipv4' : 'ipv6',
    state: payload[1]!,
    local: { address: addressAt(payload, 8, v4), port: payload.readUInt16BE(4) },
    remote: { address: addressAt(payload, 24, v4), port: payload.readUInt16BE(6) },
    uid: payload.readUInt32LE(64),
    inode: payload.readUInt32LE(68),
    cookie: payload.readUInt32LE(48) * 0x100000000 + payload.readUInt32LE(44),
  };
  if (payload.length > MSG_BYTES) {
    const info = infoAttribute(payload);
    if (info && info.length >= TCPI_BYTES_RECEIVED + 8) {
      socket.rx = dataBytesReceived(info, socket.state);
      socket.tx = dataBytesSent(info);
    }
  }
  return socket;
}

/** A 4-tuple with raw network-order addresses (4 or 16 bytes each), `local` being this machine's end. */
export type ExactTuple = SocketTuple;

export class SockDiagDumper {
  private readonly nl: NetlinkSocket;
  private readonly request = Buffer.alloc(NLMSG_HDRLEN + REQ_BYTES);
  // The kernel fills dump datagrams up to the reader's buffer size (at most 32 KiB per skb).
  private readonly reply = Buffer.alloc(64 * 1024);
  private seq = 1;
  private exact?: SockDiag;
  /** Messages skipped because they did not parse (counted, for tests and diagnostics). */
  malformed = 0;

  constructor() {
    this.nl = openNetlink(NETLINK_SOCK_DIAG, { receiveTimeoutMs: 2000, receiveBuffer: 1 << 20 });
  }

  /** Calls `visit` for each socket of one protocol and family. Throws NetlinkError on failure. */
  dump(protocol: InetProtocol, family: AddressFamily, visit: (socket: InetSocket) => void, options: DumpOptions = {}): void {
    const seq = this.fill(NLM_F_REQUEST | NLM_F_DUMP, protocol, family, options.states ?? ALL_STATES, options.counters === true && protocol === 'tcp');
    this.nl.send(this.request);
    for (;;) {
      const n = this.nl.receive(this.reply);
      if (n < 0) throw new NetlinkError('sock_diag dump (no reply)', 110 /* ETIMEDOUT */);
      for (const m of parseMessages(this.reply, n)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_DONE) return;
        if (m.type === NLMSG_ERROR) throw new NetlinkError('sock_diag dump', errorCode(m) ?? 5);
        if (m.type === NLMSG_OVERRUN) throw new NetlinkError('sock_diag dump (overrun)', 105 /* ENOBUFS */);
        if (m.type !== SOCK_DIAG_BY_FAMILY) continue;
        const socket = parseInetDiagMessage(m.payload, protocol);
        if (socket) visit(socket);
        else this.malformed++;
      }
    }
  }

  /** Dumps TCP and UDP over IPv4 and IPv6 into one array. */
  dumpAll(options: { tcpStates?: number; counters?: boolean; udp?: boolean } = {}): InetSocket[] {
    const out: InetSocket[] = [];
    const push = (s: InetSocket): void => {
      out.push(s);
    };
    for (const family of ['ipv4', 'ipv6'] as const) {
      this.dump('tcp', family, push, { states: options.tcpStates ?? TCP_OWNED_STATES, counters: options.counters ?? true });
      if (options.udp !== false) this.dump('udp', family, push);
    }
    return out;
  }

  /** The socket with exactly this tuple (with tcp_info counters for TCP), or undefined (ENOENT, or the
   *  kernel answered with another socket). The exact lookup of sock-diag.ts, on its own socket. */
  lookup(tuple: ExactTuple, counters = true): InetSocket | undefined {
    this.exact ??= new SockDiag();
    const payload = this.exact.lookupPayload(tuple, { counters });
    if (!payload) return undefined;
    const socket = parseInetDiagMessage(payload, tuple.protocol);
    if (!socket) throw new NetlinkError('sock_diag lookup (malformed reply)', 71 /* EPROTO */);
    return socket;
  }

  close(): void {
    this.exact?.close();
    this.nl.close();
  }

  private fill(flags: number, protocol: InetProtocol, family: AddressFamily, states: number, counters: boolean): number {
    const r = this.request;
    r.fill(0);
    this.seq = (this.seq + 1) >>> 0 || 1;
    r.writeUInt32LE(r.length, 0);
    r.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    r.writeUInt16LE(flags, 6);
    r.writeUInt32LE(this.seq, 8);
    const q = NLMSG_HDRLEN;
    r.writeUInt8(family === 'ipv4' ? AF_INET : AF_INET6, q);
    r.writeUInt8(protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, q + 1);
    r.writeUInt8(counters ? 1 << (INET_DIAG_INFO - 1) : 0, q + 2);
    r.writeUInt32LE(states >>> 0, q + 4);
    // No cookie: with 0 an exact lookup compares cookies and finds nothing.
    r.writeUInt32LE(0xffffffff, q + 48);
    r.writeUInt32LE(0xffffffff, q + 52);
    return this.seq;
  }
}
