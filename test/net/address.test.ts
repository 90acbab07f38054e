// One IP formatter for every layer: the kernel's socket dumps, the queue's packets, DNS answers and
// rules all write an address the same way, so their keys meet.
import { isIP } from 'node:net';
import { describe, expect, test } from 'vitest';
import { canonicalAddress, formatAddress, parseAddress } from '../../src/net/address.js';
import { canonicalIp, formatIp, parseIp } from '../../src/rules/ip.js';

/** The WHATWG URL parser writes IPv6 hosts in RFC 5952 form: an independent reference. */
function reference(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function randomV6(seed: number): Buffer {
  const b = Buffer.alloc(16);
  let x = seed * 2654435761;
  for (let g = 0; g < 8; g++) {
    x = (x * 1103515245 + 12345) >>> 0;
    // mostly zero groups, so runs of every length and position occur
    if (x % 3 !== 0) b.writeUInt16BE((x >>> 8) & 0xffff, g * 2);
  }
  return b;
}

describe('addresses are written one way', () => {
  test('IPv6: RFC 5952 (longest zero run of two or more compressed, the first on a tie), as a URL writes it', () => {
    for (let seed = 1; seed <= 3000; seed++) {
      const bytes = randomV6(seed);
      const mapped = bytes.subarray(0, 10).every((v) => v === 0) && bytes.readUInt16BE(10) === 0xffff;
      if (mapped) continue;
      const text = formatAddress(bytes)!;
      expect(text, bytes.toString('hex')).toBe(reference(bytes));
      // the rules write the same text, so a rule's address and a flow's address are equal strings
      expect(formatIp(parseIp(text)!)).toBe(text);
      expect(canonicalIp(text)).toBe(text);
      expect(parseAddress(text)).toEqual(bytes);
    }
  });

  test('edge cases: zero runs at either end, all zeros, IPv4, mapped IPv4, a wrong length', () => {
    expect(formatAddress(Buffer.from('20010db8000000010000000000000001', 'hex'))).toBe('2001:db8:0:1::1');
    expect(formatAddress(Buffer.from('20010db8000000000001000000000001', 'hex'))).toBe('2001:db8::1:0:0:1');
    expect(formatAddress(Buffer.from('fe800000000000010000000000000000', 'hex'))).toBe('fe80:0:0:1::');
    expect(formatAddress(Buffer.from('00010000000000000000000000000000', 'hex'))).toBe('1::');
    expect(formatAddress(Buffer.alloc(16))).toBe('::');
    expect(formatAddress(Buffer.from([192, 0, 2, 1]))).toBe('192.0.2.1');
    // a dual-stack socket's IPv4 peer: written mapped; the rules read it as the IPv4 address
    const mapped = formatAddress(Buffer.from('00000000000000000000ffffc0000201', 'hex'))!;
    expect(mapped).toBe('::ffff:192.0.2.1');
    expect(canonicalAddress('::FFFF:c000:201')).toBe(mapped);
    expect(canonicalIp(mapped)).toBe('192.0.2.1');
    expect(formatAddress(Buffer.alloc(5))).toBeUndefined();
  });

  test('one parser: it accepts what Node calls an IP address and nothing else', () => {
    const texts = ['10.0.0.1', '01.2.3.4', '1.2.3', '1.2.3.256', '1.2.3.4.5', '::', '::1', '::ffff:1.2.3.4', '::1.2.3.4', 'fe80::1%eth0',
      '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '12345::', 'g::1', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4',
      '1::', ':1::', '1:', '', 'localhost', '2001:DB8::A'];
    for (const text of texts) expect(parseAddress(text) !== undefined, text).toBe(isIP(text) !== 0);
    expect(parseAddress('::ffff:1.2.3.4')).toEqual(Buffer.from('00000000000000000000ffff01020304', 'hex'));
    expect(parseAddress('10.0.0.1')).toEqual(Buffer.from([10, 0, 0, 1]));
  });
});
