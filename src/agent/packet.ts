// The first bytes of a queued packet → its 5-tuple. Pure and bounds-checked: a truncated or unknown
// packet yields undefined, never an exception.
export type PacketProtocol = 'tcp' | 'udp' | 'icmp' | 'other';

/** The key of a flow's packets in their direction of travel: retransmitted SYNs and further datagrams
 *  of one 5-tuple share it (pending flows join on it, remembered decisions answer it). */
export function flowKey(p: Pick<PacketTuple, 'protocol' | 'src' | 'srcPort' | 'dst' | 'dstPort'>): string {
  return `${p.protocol}|${p.src.toString('hex')}|${p.srcPort}|${p.dst.toString('hex')}|${p.dstPort}`;
}

export interface PacketTuple {
  family: 'ipv4' | 'ipv6';
  protocol: PacketProtocol;
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6…). */
  ipProtocol: number;
  src: Buffer;
  dst: Buffer;
  /** 0 for protocols without ports. */
  srcPort: number;
  dstPort: number;
  /** TCP flags byte (SYN 0x02, ACK 0x10), 0 otherwise. */
  tcpFlags: number;
}

const IPV6_EXTENSIONS = new Set([0, 43, 60]); // hop-by-hop, routing, destination options

function protocolName(n: number): PacketProtocol {
  return n === 6 ? 'tcp' : n === 17 ? 'udp' : n === 1 || n === 58 ? 'icmp' : 'other';
}

export function parsePacket(p: Buffer): PacketTuple | undefined {
  if (p.length < 1) return undefined;
  const version = p[0]! >> 4;
  let family: 'ipv4' | 'ipv6';
  let ipProtocol: number;
  let l4: number;
  let src: Buffer;
  let dst: Buffer;
  if (version === 4) {
    if (p.length < 20) return undefined;
    const ihl = (p[0]! & 0x0f) * 4;
    if (ihl < 20 || p.length < ihl) return undefined;
    family = 'ipv4';
    ipProtocol = p[9]!;
    src = Buffer.from(p.subarray(12, 16));
    dst = Buffer.from(p.subarray(16, 20));
    // a non-first fragment carries no transport header
    if ((p.readUInt16BE(6) & 0x1fff) !== 0) return { family, protocol: protocolName(ipProtocol), ipProtocol, src, dst, srcPort: 0, dstPort: 0, tcpFlags: 0 };
    l4 = ihl;
  } else if (version === 6) {
    if (p.length < 40) return undefined;
    family = 'ipv6';
    src = Buffer.from(p.subarray(8, 24));
    dst = Buffer.from(p.subarray(24, 40));
    ipProtocol = p[6]!;
    l4 = 40;
    while (IPV6_EXTENSIONS.has(ipProtocol)) {
      if (p.length < l4 + 2) return undefined;
      const next = p[l4]!;
      l4 += (p[l4 + 1]! + 1) * 8;
      ipProtocol = next;
    }
  } else return undefined;
  const protocol = protocolName(ipProtocol);
  let srcPort = 0;
  let dstPort = 0;
  let tcpFlags = 0;
  if (protocol === 'tcp' || protocol === 'udp') {
    if (p.length < l4 + 4) return undefined;
    srcPort = p.readUInt16BE(l4);
    dstPort = p.readUInt16BE(l4 + 2);
    if (protocol === 'tcp') {
      if (p.length < l4 + 14) return undefined;
      tcpFlags = p[l4 + 13]!;
    }
  }
  return { family, protocol, ipProtocol, src, dst, srcPort, dstPort, tcpFlags };
}
