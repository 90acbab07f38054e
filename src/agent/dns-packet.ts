// A queued DNS answer (an IP packet from port 53) → the DNS messages it carries. Pure and
// bounds-checked: anything truncated, fragmented or malformed yields no message, never an exception.
// A TCP answer is read when its segment starts a message (the 2-byte length prefix); answers split
// over several segments are not reassembled.
import { parseDnsMessage, parseDnsTcpPayload, type DnsMessage } from '../hostnames/index.js';

const IPV6_EXTENSIONS = new Set([0, 43, 60]);

export function dnsMessagesOf(p: Buffer): DnsMessage[] {
  if (p.length < 1) return [];
  const version = p[0]! >> 4;
  let proto: number;
  let l4: number;
  let end = p.length;
  if (version === 4) {
    if (p.length < 20) return [];
    l4 = (p[0]! & 0x0f) * 4;
    if (l4 < 20 || (p.readUInt16BE(6) & 0x3fff) !== 0) return []; // fragment: not read
    proto = p[9]!;
    end = Math.min(end, p.readUInt16BE(2));
  } else if (version === 6) {
    if (p.length < 40) return [];
    proto = p[6]!;
    l4 = 40;
    end = Math.min(end, 40 + p.readUInt16BE(4));
    while (IPV6_EXTENSIONS.has(proto)) {
      if (end < l4 + 2) return [];
      const next = p[l4]!;
      l4 += (p[l4 + 1]! + 1) * 8;
      proto = next;
    }
  } else return [];
  if (proto === 17) {
    if (end < l4 + 8 || p.readUInt16BE(l4) !== 53) return [];
    const m = parseDnsMessage(p.subarray(l4 + 8, end));
    return m ? [m] : [];
  }
  if (proto === 6) {
    if (end < l4 + 20 || p.readUInt16BE(l4) !== 53) return [];
    const data = l4 + (p[l4 + 12]! >> 4) * 4;
    if (data >= end) return [];
    return parseDnsTcpPayload(p.subarray(data, end));
  }
  return [];
}
