// Builds DNS messages byte by byte for tests and for the test DNS responder: written independently
// of the parser so a mistake in one is not mirrored in the other.

export function encodeName(name: string): Buffer {
  const parts = name === '' ? [] : name.split('.');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}

export function header(id: number, flags: number, qd: number, an: number, ns = 0, ar = 0): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(flags, 2);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  b.writeUInt16BE(ns, 8);
  b.writeUInt16BE(ar, 10);
  return b;
}

export function question(name: string | Buffer, type: number): Buffer {
  const n = typeof name === 'string' ? encodeName(name) : name;
  const t = Buffer.alloc(4);
  t.writeUInt16BE(type, 0);
  t.writeUInt16BE(1, 2);
  return Buffer.concat([n, t]);
}

export function record(name: string | Buffer, type: number, ttl: number, rdata: Buffer, klass = 1): Buffer {
  const n = typeof name === 'string' ? encodeName(name) : name;
  const f = Buffer.alloc(10);
  f.writeUInt16BE(type, 0);
  f.writeUInt16BE(klass, 2);
  f.writeUInt32BE(ttl >>> 0, 4);
  f.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([n, f, rdata]);
}

export function pointer(offset: number): Buffer {
  return Buffer.from([0xc0 | (offset >> 8), offset & 0xff]);
}

export const ipv4 = (text: string): Buffer => Buffer.from(text.split('.').map(Number));

export function ipv6(text: string): Buffer {
  const [h = '', t = ''] = text.split('::');
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...new Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** A standard response: the question, then a chain of CNAMEs, then address records for the last name. */
export function response(opts: {
  id?: number;
  name: string;
  qtype?: number;
  cnames?: Array<{ target: string; ttl: number }>;
  addresses: Array<{ address: string; ttl: number }>;
  rcode?: number;
}): Buffer {
  const qtype = opts.qtype ?? 1;
  const records: Buffer[] = [];
  let owner = opts.name;
  for (const c of opts.cnames ?? []) {
    records.push(record(owner, 5, c.ttl, encodeName(c.target)));
    owner = c.target;
  }
  for (const a of opts.addresses) {
    const v6 = a.address.includes(':');
    records.push(record(owner, v6 ? 28 : 1, a.ttl, v6 ? ipv6(a.address) : ipv4(a.address)));
  }
  return Buffer.concat([header(opts.id ?? 0x1234, 0x8180 | (opts.rcode ?? 0), 1, records.length), question(opts.name, qtype), ...records]);
}
