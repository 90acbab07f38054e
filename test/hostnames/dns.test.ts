import { describe, expect, it } from 'vitest';
import { parseDnsMessage, parseDnsTcpPayload } from '../../src/hostnames/dns.js';
import { encodeName, header, ipv4, ipv6, pointer, question, record, response } from './helpers/dns-wire.js';

describe('parseDnsMessage: answers a person would see as host names', () => {
  it('reads an A answer, lowercasing names', () => {
    const m = parseDnsMessage(response({ name: 'WWW.Example.COM', addresses: [{ address: '93.184.216.34', ttl: 300 }] }))!;
    expect(m.response).toBe(true);
    expect(m.rcode).toBe(0);
    expect(m.questions).toEqual([{ name: 'www.example.com', type: 1 }]);
    expect(m.answers).toEqual([{ type: 'A', name: 'www.example.com', ttl: 300, address: '93.184.216.34' }]);
  });

  it('reads AAAA answers in canonical IPv6 form', () => {
    const m = parseDnsMessage(response({ name: 'v6.test', qtype: 28, addresses: [{ address: '2001:db8:0:0:0:0:0:1', ttl: 60 }, { address: '2001:db8:1:0:0:0:0:0', ttl: 60 }] }))!;
    expect(m.answers.map((a) => (a.type === 'CNAME' ? a.target : a.address))).toEqual(['2001:db8::1', '2001:db8:1::']);
  });

  it('reads CNAME chains', () => {
    const m = parseDnsMessage(response({
      name: 'app.example.com',
      cnames: [{ target: 'edge.cdn.net', ttl: 30 }, { target: 'e1.cdn.net', ttl: 20 }],
      addresses: [{ address: '198.51.100.7', ttl: 10 }],
    }))!;
    expect(m.answers).toEqual([
      { type: 'CNAME', name: 'app.example.com', ttl: 30, target: 'edge.cdn.net' },
      { type: 'CNAME', name: 'edge.cdn.net', ttl: 20, target: 'e1.cdn.net' },
      { type: 'A', name: 'e1.cdn.net', ttl: 10, address: '198.51.100.7' },
    ]);
  });

  it('follows compression pointers, in owners and in CNAME targets', () => {
    // Question at offset 12: "www.example.com"; "example.com" starts at 16.
    const q = question('www.example.com', 1);
    const cnameTarget = Buffer.concat([Buffer.from([3]), Buffer.from('cdn'), pointer(16)]); // cdn.example.com
    const cname = record(pointer(12), 5, 100, cnameTarget);
    const cnameRdataAt = 12 + q.length + 2 + 10;
    const a = record(pointer(cnameRdataAt), 1, 50, ipv4('10.1.2.3'));
    const m = parseDnsMessage(Buffer.concat([header(7, 0x8180, 1, 2), q, cname, a]))!;
    expect(m.answers).toEqual([
      { type: 'CNAME', name: 'www.example.com', ttl: 100, target: 'cdn.example.com' },
      { type: 'A', name: 'cdn.example.com', ttl: 50, address: '10.1.2.3' },
    ]);
  });

  it('skips other record types and classes but keeps reading past them', () => {
    const q = question('x.test', 1);
    const txt = record('x.test', 16, 5, Buffer.from([3, 0x61, 0x62, 0x63]));
    const chaos = record('x.test', 1, 5, ipv4('1.1.1.1'), 3);
    const a = record('x.test', 1, 5, ipv4('2.2.2.2'));
    const m = parseDnsMessage(Buffer.concat([header(1, 0x8180, 1, 3), q, txt, chaos, a]))!;
    expect(m.answers).toEqual([{ type: 'A', name: 'x.test', ttl: 5, address: '2.2.2.2' }]);
  });

  it('reads a TTL with the top bit set as 0 (RFC 2181)', () => {
    const m = parseDnsMessage(response({ name: 'a.test', addresses: [{ address: '1.2.3.4', ttl: 0x80000000 }] }))!;
    expect(m.answers[0]!.ttl).toBe(0);
  });

  it('escapes bytes that could reach the terminal as control sequences', () => {
    const evil = Buffer.concat([Buffer.from([6]), Buffer.from('a\x1b[31m', 'latin1'), encodeName('test')]);
    const m = parseDnsMessage(Buffer.concat([header(1, 0x8180, 1, 1), question(evil, 1), record(evil, 1, 5, ipv4('1.2.3.4'))]))!;
    expect(m.answers[0]!.name).toBe('a\\027[31m.test');
    // A dot inside a label is not a label separator.
    const dotted = Buffer.concat([Buffer.from([3]), Buffer.from('a.b'), Buffer.from([0])]);
    expect(parseDnsMessage(Buffer.concat([header(1, 0x8180, 1, 0), question(dotted, 1)]))!.questions[0]!.name).toBe('a\\046b');
  });

  it('reports NXDOMAIN and queries as such', () => {
    expect(parseDnsMessage(response({ name: 'nope.test', addresses: [], rcode: 3 }))!.rcode).toBe(3);
    const query = Buffer.concat([header(9, 0x0100, 1, 0), question('q.test', 1)]);
    expect(parseDnsMessage(query)!.response).toBe(false);
  });
});

describe('parseDnsMessage: refuses malformed input without throwing', () => {
  const q = question('a.test', 1);
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['short header', Buffer.alloc(11)],
    ['question count larger than the message', header(1, 0x8180, 3, 0)],
    ['name running off the end', Buffer.concat([header(1, 0x8180, 1, 0), Buffer.from([5, 0x61, 0x62])])],
    ['question without type and class', Buffer.concat([header(1, 0x8180, 1, 0), encodeName('a.test')])],
    ['pointer to itself', Buffer.concat([header(1, 0x8180, 1, 0), pointer(12), Buffer.alloc(4)])],
    ['pointer forwards', Buffer.concat([header(1, 0x8180, 1, 0), pointer(20), Buffer.alloc(10)])],
    ['pointer loop through two labels', Buffer.concat([header(1, 0x8180, 1, 0), Buffer.from([1, 0x61]), pointer(12), Buffer.alloc(4)])],
    ['pointer cut in half', Buffer.concat([header(1, 0x8180, 1, 0), Buffer.from([0xc0])])],
    ['extended label type 0x40', Buffer.concat([header(1, 0x8180, 1, 0), Buffer.from([0x41, 0]), Buffer.alloc(4)])],
    ['rdata longer than the message', Buffer.concat([header(1, 0x8180, 1, 1), q, record('a.test', 1, 5, ipv4('1.2.3.4')).subarray(0, 20)])],
    ['CNAME target spilling out of its rdata', Buffer.concat([header(1, 0x8180, 1, 1), q, (() => {
      const r = record('a.test', 5, 5, encodeName('long.target.test'));
      r.writeUInt16BE(3, encodeName('a.test').length + 8); // rdlength says 3 bytes
      return r;
    })()])],
    ['name longer than 253 characters', Buffer.concat([header(1, 0x8180, 1, 0), encodeName(Array.from({ length: 5 }, () => 'x'.repeat(60)).join('.')), Buffer.alloc(4)])],
    ['answer count above any real message', Buffer.concat([header(1, 0x8180, 0, 60000)])],
  ];
  it.each(cases)('%s', (_label, bytes) => {
    expect(parseDnsMessage(bytes)).toBeUndefined();
  });

  it('drops an A record whose rdata is not 4 bytes instead of inventing an address', () => {
    const bad = record('a.test', 1, 5, Buffer.from([1, 2, 3]));
    const m = parseDnsMessage(Buffer.concat([header(1, 0x8180, 1, 1), q, bad]))!;
    expect(m.answers).toEqual([]);
  });

  it('survives 200,000 random and mutated messages', () => {
    let seed = 0x2545f491;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const valid = [
      response({ name: 'app.example.com', cnames: [{ target: 'edge.cdn.net', ttl: 30 }], addresses: [{ address: '198.51.100.7', ttl: 10 }, { address: '2001:db8::9', ttl: 10 }] }),
      Buffer.concat([header(7, 0x8180, 1, 1), question('www.example.com', 1), record(pointer(12), 1, 50, ipv4('10.1.2.3'))]),
    ];
    let parsed = 0;
    for (let i = 0; i < 200_000; i++) {
      let bytes: Buffer;
      if (i % 2 === 0) {
        bytes = Buffer.from(valid[i % 4 === 0 ? 0 : 1]!);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips; f++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
        if (rand() < 0.2) bytes = bytes.subarray(0, Math.floor(rand() * bytes.length));
      } else {
        bytes = Buffer.alloc(Math.floor(rand() * 96));
        for (let j = 0; j < bytes.length; j++) bytes[j] = rand() < 0.3 ? 0xc0 | Math.floor(rand() * 4) : Math.floor(rand() * 256);
      }
      const m = parseDnsMessage(bytes);
      if (!m) continue;
      parsed++;
      for (const a of m.answers) {
        expect(a.name.length).toBeLessThanOrEqual(253 * 4);
        expect(a.ttl).toBeGreaterThanOrEqual(0);
        expect(a.name).not.toMatch(/[\x00-\x20\x7f-\uffff]/);
        if (a.type !== 'CNAME') expect(a.address).toMatch(/^[0-9a-f.:]+$/);
      }
    }
    expect(parsed).toBeGreaterThan(1000); // the mutations still exercise the record paths
  });
});

describe('parseDnsTcpPayload', () => {
  it('splits length-prefixed messages and stops at an incomplete one', () => {
    const one = response({ name: 'a.test', addresses: [{ address: '1.2.3.4', ttl: 5 }] });
    const two = response({ name: 'b.test', addresses: [{ address: '5.6.7.8', ttl: 5 }] });
    const prefix = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
    const payload = Buffer.concat([prefix(one), prefix(two), prefix(one).subarray(0, 10)]);
    expect(parseDnsTcpPayload(payload).map((m) => m.questions[0]!.name)).toEqual(['a.test', 'b.test']);
    expect(parseDnsTcpPayload(Buffer.from([0xff]))).toEqual([]);
  });
});
