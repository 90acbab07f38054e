// The queued packet parser: real header bytes in, 5-tuple out; truncated input is refused, not read past.
import { describe, expect, it } from 'vitest';
import { parsePacket } from '../../src/agent/packet.js';
import { formatAddress } from '../../src/net/address.js';

// A hand-built IPv4 TCP SYN 127.0.0.1:50010 → 127.0.0.1:8080 (IP + TCP headers, as copied to the queue).
const SYN4 = Buffer.from('4500003c1c464000400600007f0000017f000001c35a1f90000000000000000050022000fe300000', 'hex');
// An IPv6 UDP datagram [::1]:5353 → [::1]:53.
const UDP6 = Buffer.concat([
  Buffer.from('60000000000c1140', 'hex'),
  Buffer.from('00000000000000000000000000000001', 'hex'),
  Buffer.from('00000000000000000000000000000001', 'hex'),
  Buffer.from('14e90035000c0000', 'hex'),
]);

describe('parsePacket', () => {
  it('reads an IPv4 TCP SYN', () => {
    const p = parsePacket(SYN4)!;
    expect(p).toMatchObject({ family: 'ipv4', protocol: 'tcp', srcPort: 50010, dstPort: 8080, tcpFlags: 0x02 });
    expect(formatAddress(p.src)).toBe('127.0.0.1');
  });

  it('reads an IPv6 UDP datagram', () => {
    const p = parsePacket(UDP6)!;
    expect(p).toMatchObject({ family: 'ipv6', protocol: 'udp', srcPort: 5353, dstPort: 53 });
    expect(formatAddress(p.dst)).toBe('::1');
  });

  it('refuses truncated or unknown packets', () => {
    for (let n = 0; n < SYN4.length - 6; n++) {
      const p = parsePacket(SYN4.subarray(0, n));
      if (n < 34) expect(p).toBeUndefined();
    }
    expect(parsePacket(Buffer.from([0x50, 0, 0, 0]))).toBeUndefined();
    const badIhl = Buffer.from(SYN4);
    badIhl[0] = 0x41; // header length 4 bytes
    expect(parsePacket(badIhl)).toBeUndefined();
  });

  it('formats IPv6 the way people write it', () => {
    expect(formatAddress(Buffer.from('20010db8000000000000000000000001', 'hex'))).toBe('2001:db8::1');
    expect(formatAddress(Buffer.from('00000000000000000000ffff0a000001', 'hex'))).toBe('::ffff:10.0.0.1');
    expect(formatAddress(Buffer.from('fe800000000000010000000000000000', 'hex'))).toBe('fe80:0:0:1::');
  });
});
