// Deleting one conntrack entry over ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK). The agent only
// queues a flow's first packet (conntrack NEW); once the entry is gone, the flow's next packet is new
// again and comes back to the queue to be judged — how a live UDP flow is ended (its socket may serve
// other peers, so destroying it is not an option).
import { AF_INET, AF_INET6, NETLINK_NETFILTER, NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST, NetlinkError, awaitAck, buildAttribute, buildMessage, openNetlink, u16BE, type NetlinkSocket } from './netlink.js';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const ENOENT = 2;
const PROTO_NUMBER = { tcp: 6, udp: 17 } as const;
const RECEIVE_TIMEOUT_MS = 1000;

/** A flow's original direction: `src` sent the first packet. Addresses are 4 or 16 raw bytes. */
export interface ConntrackTuple {
  protocol: 'tcp' | 'udp';
  src: { address: Buffer; port: number };
  dst: { address: Buffer; port: number };
}

const nested = (type: number, ...parts: Buffer[]): Buffer => buildAttribute(type | NLA_F_NESTED, Buffer.concat(parts));

/** The CT_DELETE request for one tuple (exported for tests of its layout). */
export function deleteRequest(tuple: ConntrackTuple, seq: number): Buffer {
  const v4 = tuple.src.address.length === 4;
  if (tuple.src.address.length !== tuple.dst.address.length || (!v4 && tuple.src.address.length !== 16)) {
    throw new RangeError('conntrack tuple: both addresses must be 4 or 16 bytes');
  }
  const nfgen = Buffer.from([v4 ? AF_INET : AF_INET6, 0, 0, 0]);
  const ip = nested(CTA_TUPLE_IP,
    buildAttribute(v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, tuple.src.address),
    buildAttribute(v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, tuple.dst.address));
  const proto = nested(CTA_TUPLE_PROTO,
    buildAttribute(CTA_PROTO_NUM, Buffer.from([PROTO_NUMBER[tuple.protocol]])),
    buildAttribute(CTA_PROTO_SRC_PORT, u16BE(tuple.src.port)),
    buildAttribute(CTA_PROTO_DST_PORT, u16BE(tuple.dst.port)));
  return buildMessage((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, nfgen, nested(CTA_TUPLE_ORIG, ip, proto));
}

export class Conntrack {
  private readonly nl: NetlinkSocket;
  private readonly reply = Buffer.alloc(8192);
  private seq = 1;

  constructor() {
    this.nl = openNetlink(NETLINK_NETFILTER, { receiveTimeoutMs: RECEIVE_TIMEOUT_MS });
  }

  /** Deletes the entry of `tuple`. True when one was deleted, false when there was none (ENOENT).
   *  Throws NetlinkError otherwise (EPERM without CAP_NET_ADMIN…). */
  delete(tuple: ConntrackTuple): boolean {
    const seq = ++this.seq;
    this.nl.send(deleteRequest(tuple, seq));
    const code = awaitAck(this.nl, this.reply, seq, 'conntrack delete', RECEIVE_TIMEOUT_MS);
    if (code === 0) return true;
    if (code === ENOENT) return false;
    throw new NetlinkError('conntrack delete', code);
  }

  close(): void {
    this.nl.close();
  }
}
