// Parser for DNS messages seen on the wire (RFC 1035): the question names and the A / AAAA / CNAME
// answers, nothing else. Input comes from the network, so every length and offset is checked against
// the buffer, compression pointers may only point backwards (which also makes loops impossible), and
// garbage gives `undefined` — the parser never throws.
import { formatAddress } from '../net/address.js';

export interface DnsAddressRecord {
  type: 'A' | 'AAAA';
  /** Owner name, lowercase, no trailing dot. */
  name: string;
  ttl: number;
  address: string;
}

export interface DnsCnameRecord {
  type: 'CNAME';
  name: string;
  ttl: number;
  target: string;
}

export type DnsRecord = DnsAddressRecord | DnsCnameRecord;

export interface DnsMessage {
  id: number;
  response: boolean;
  /** RCODE (0 = no error, 3 = NXDOMAIN…). */
  rcode: number;
  truncated: boolean;
  questions: Array<{ name: string; type: number }>;
  /** A, AAAA and CNAME records of the answer section; other types are skipped. */
  answers: DnsRecord[];
}

const HEADER_BYTES = 12;
const MAX_NAME_TEXT = 253;
/** More than this many records in one section is not a real answer: refuse rather than loop. */
const MAX_RECORDS = 512;
const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

interface NameResult {
  name: string;
  /** Offset just after the name where it appeared in sequence (not after a followed pointer). */
  next: number;
}

/** Reads a possibly compressed name at `offset`. Each pointer must point strictly before the label
 *  sequence that contains it, so following pointers always moves backwards and terminates. */
function readName(buf: Uint8Array, offset: number): NameResult | undefined {
  const labels: string[] = [];
  let textLength = 0;
  let at = offset;
  let next = -1;
  let floor = offset; // pointers must land before this
  for (;;) {
    if (at >= buf.length) return undefined;
    const len = buf[at]!;
    if (len === 0) {
      if (next < 0) next = at + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (at + 1 >= buf.length) return undefined;
      const target = ((len & 0x3f) << 8) | buf[at + 1]!;
      if (next < 0) next = at + 2;
      if (target >= floor) return undefined;
      floor = target;
      at = target;
      continue;
    }
    if (kind !== 0) return undefined; // 0x40 / 0x80: extended label types, obsolete
    if (at + 1 + len > buf.length) return undefined;
    textLength += len + (labels.length > 0 ? 1 : 0);
    if (textLength > MAX_NAME_TEXT) return undefined;
    labels.push(labelText(buf, at + 1, len));
    at += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** A label as text, lowercase; bytes a terminal could misread (control characters, spaces, dots,
 *  backslashes, non-ASCII) are written as \DDD, like dig does, so a name can never inject escapes. */
function labelText(buf: Uint8Array, start: number, len: number): string {
  let out = '';
  for (let i = start; i < start + len; i++) {
    let b = buf[i]!;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    if (b > 0x20 && b < 0x7f && b !== 0x2e && b !== 0x5c) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return out;
}

function u16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) >>> 0) + (buf[at + 1]! << 16) + (buf[at + 2]! << 8) + buf[at + 3]!;
}

/** Parses one DNS message (UDP payload, or one TCP message without its length prefix). */
export function parseDnsMessage(buf: Uint8Array): DnsMessage | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  const flags = u16(buf, 2);
  const qdcount = u16(buf, 4);
  const ancount = u16(buf, 6);
  if (qdcount > MAX_RECORDS || ancount > MAX_RECORDS) return undefined;
  const message: DnsMessage = {
    id: u16(buf, 0),
    response: (flags & 0x8000) !== 0,
    rcode: flags & 0xf,
    truncated: (flags & 0x0200) !== 0,
    questions: [],
    answers: [],
  };
  let at = HEADER_BYTES;
  for (let i = 0; i < qdcount; i++) {
    const name = readName(buf, at);
    if (!name || name.next + 4 > buf.length) return undefined;
    message.questions.push({ name: name.name, type: u16(buf, name.next) });
    at = name.next + 4;
  }
  for (let i = 0; i < ancount; i++) {
    const name = readName(buf, at);
    if (!name || name.next + 10 > buf.length) return undefined;
    const type = u16(buf, name.next);
    const klass = u16(buf, name.next + 2);
    // TTL is unsigned on the wire but RFC 2181 §8 says values with the top bit set mean zero.
    const rawTtl = u32(buf, name.next + 4);
    const ttl = rawTtl > 0x7fffffff ? 0 : rawTtl;
    const rdlength = u16(buf, name.next + 8);
    const rdata = name.next + 10;
    if (rdata + rdlength > buf.length) return undefined;
    if (klass === CLASS_IN) {
      if (type === TYPE_A && rdlength === 4) {
        message.answers.push({ type: 'A', name: name.name, ttl, address: formatAddress(buf.subarray(rdata, rdata + 4))! });
      } else if (type === TYPE_AAAA && rdlength === 16) {
        message.answers.push({ type: 'AAAA', name: name.name, ttl, address: formatAddress(buf.subarray(rdata, rdata + 16))! });
      } else if (type === TYPE_CNAME) {
        // The target may use compression pointing anywhere earlier, but must end inside its rdata.
        const target = readName(buf, rdata);
        if (!target || target.next > rdata + rdlength) return undefined;
        message.answers.push({ type: 'CNAME', name: name.name, ttl, target: target.name });
      }
    }
    at = rdata + rdlength;
  }
  return message;
}

/** Parses the DNS messages in a TCP payload (each prefixed by its 2-byte length). Stops at the first
 *  incomplete or malformed one. */
export function parseDnsTcpPayload(buf: Uint8Array, maxMessages = 16): DnsMessage[] {
  const out: DnsMessage[] = [];
  let at = 0;
  while (out.length < maxMessages && at + 2 <= buf.length) {
    const len = u16(buf, at);
    if (len === 0 || at + 2 + len > buf.length) break;
    const message = parseDnsMessage(buf.subarray(at + 2, at + 2 + len));
    if (!message) break;
    out.push(message);
    at += 2 + len;
  }
  return out;
}
