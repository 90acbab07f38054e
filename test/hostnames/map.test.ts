import { describe, expect, it } from 'vitest';
import { parseDnsMessage } from '../../src/hostnames/dns.js';
import { HostNameMap } from '../../src/hostnames/map.js';
import { canonicalAddress, formatAddress } from '../../src/net/address.js';
import { response } from './helpers/dns-wire.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('HostNameMap', () => {
  it('names an address with the name the client asked for, not the CDN name at the end of the chain', () => {
    const map = new HostNameMap();
    const m = parseDnsMessage(response({
      name: 'app.example.com',
      cnames: [{ target: 'edge.cdn.net', ttl: 300 }, { target: 'e1.cdn.net', ttl: 300 }],
      addresses: [{ address: '198.51.100.7', ttl: 300 }, { address: '2001:db8::7', ttl: 300 }],
    }))!;
    expect(map.addResponse(m)).toBe(2);
    expect(map.lookup('198.51.100.7')).toMatchObject({ name: 'app.example.com', source: 'dns' });
    expect(map.lookup('2001:0db8:0:0::7')?.name).toBe('app.example.com');
    // A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
    expect(map.lookup('::ffff:198.51.100.7')?.name).toBe('app.example.com');
    expect(map.lookup('198.51.100.8')).toBeUndefined();
  });

  it('expires entries after the shortest TTL along the chain, with a floor for TTL 0', () => {
    const c = clock();
    const map = new HostNameMap({ now: c.now, minTtlSec: 5 });
    map.addResponse(parseDnsMessage(response({ name: 'a.test', cnames: [{ target: 'b.test', ttl: 20 }], addresses: [{ address: '10.0.0.1', ttl: 600 }] }))!);
    map.addResponse(parseDnsMessage(response({ name: 'zero.test', addresses: [{ address: '10.0.0.2', ttl: 0 }] }))!);
    c.advance(4_000);
    expect(map.lookup('10.0.0.2')?.name).toBe('zero.test');
    c.advance(1_001);
    expect(map.lookup('10.0.0.2')).toBeUndefined();
    expect(map.lookup('10.0.0.1')?.name).toBe('a.test');
    c.advance(15_000);
    expect(map.lookup('10.0.0.1')).toBeUndefined();
  });

  it('ignores queries, failed answers, and CNAME loops', () => {
    const map = new HostNameMap();
    expect(map.addResponse({ id: 1, response: false, rcode: 0, truncated: false, questions: [], answers: [{ type: 'A', name: 'x', ttl: 5, address: '1.1.1.1' }] })).toBe(0);
    expect(map.addResponse({ id: 1, response: true, rcode: 2, truncated: false, questions: [], answers: [{ type: 'A', name: 'x', ttl: 5, address: '1.1.1.1' }] })).toBe(0);
    const loop = {
      id: 1, response: true, rcode: 0, truncated: false,
      questions: [{ name: 'a', type: 1 }],
      answers: [
        { type: 'CNAME' as const, name: 'a', ttl: 5, target: 'b' },
        { type: 'CNAME' as const, name: 'b', ttl: 5, target: 'c' },
        { type: 'CNAME' as const, name: 'c', ttl: 5, target: 'b' },
        { type: 'A' as const, name: 'c', ttl: 5, address: '1.1.1.1' },
      ],
    };
    expect(map.addResponse(loop)).toBe(1);
    expect(map.lookup('1.1.1.1')?.name).toBe('a');
  });

  it('uses the head of the chain when the message has no question', () => {
    const map = new HostNameMap();
    map.addResponse({
      id: 1, response: true, rcode: 0, truncated: false, questions: [],
      answers: [
        { type: 'CNAME', name: 'www.site.test', ttl: 5, target: 'lb.site.test' },
        { type: 'A', name: 'lb.site.test', ttl: 5, address: '10.9.9.9' },
      ],
    });
    expect(map.lookup('10.9.9.9')?.name).toBe('www.site.test');
  });

  it('keeps at most maxEntries addresses, dropping the least recently learnt', () => {
    const map = new HostNameMap({ maxEntries: 3 });
    for (let i = 1; i <= 5; i++) map.set(`10.0.0.${i}`, `h${i}.test`, 'dns', 60);
    expect(map.size).toBe(3);
    expect(map.lookup('10.0.0.1')).toBeUndefined();
    expect(map.lookup('10.0.0.2')).toBeUndefined();
    expect(map.lookup('10.0.0.5')?.name).toBe('h5.test');
    map.set('10.0.0.3', 'h3-again.test', 'dns', 60); // refreshed: now the newest
    map.set('10.0.0.6', 'h6.test', 'dns', 60);
    expect(map.lookup('10.0.0.3')?.name).toBe('h3-again.test');
    expect(map.lookup('10.0.0.4')).toBeUndefined();
  });

  it('never lets a reverse name replace a live DNS name', () => {
    const c = clock();
    const map = new HostNameMap({ now: c.now, minTtlSec: 1 });
    map.set('10.1.1.1', 'asked-for.test', 'dns', 10);
    map.set('10.1.1.1', 'ptr.isp.test', 'reverse', 3600);
    expect(map.lookup('10.1.1.1')).toMatchObject({ name: 'asked-for.test', source: 'dns' });
    c.advance(11_000);
    map.set('10.1.1.1', 'ptr.isp.test', 'reverse', 3600);
    expect(map.lookup('10.1.1.1')).toMatchObject({ name: 'ptr.isp.test', source: 'reverse' });
    map.set('10.1.1.1', 'new.test', 'dns', 10);
    expect(map.lookup('10.1.1.1')?.source).toBe('dns');
  });
});

describe('address canonical form', () => {
  it('follows RFC 5952', () => {
    expect(canonicalAddress('2001:DB8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalAddress('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalAddress('::')).toBe('::');
    expect(canonicalAddress('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(canonicalAddress('::ffff:10.0.0.1')).toBe('::ffff:10.0.0.1');
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(canonicalAddress('not an address')).toBeUndefined();
    expect(formatAddress(Buffer.alloc(5))).toBeUndefined();
  });
});
