// IP addresses and CIDR blocks for rule matching: parse once, compare as 32-bit words.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports) is the IPv4 address:
// a rule for 192.0.2.1 must match it.
import { formatIPv4Word, formatIPv6Groups } from '../net/address.js';

export interface IpAddress {
  family: 4 | 6;
  /** IPv4: one word; IPv6: four words, most significant first. Unsigned 32-bit values. */
  words: number[];
}

export interface Cidr {
  base: IpAddress;
  prefix: number;
}

/** Dotted quad in text[start, end) → unsigned word, or -1. No leading zeros (they read as octal elsewhere). */
function parseV4Word(text: string, start = 0, end = text.length): number {
  let word = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46; // a virtual '.' closes the last part
    if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46) {
      if (digits === 0 || ++parts > 4) return -1;
      word = word * 256 + part;
      part = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  return parts === 4 ? word : -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const scratch = new Uint16Array(8);

/** IPv6 text → eight 16-bit groups in `scratch`; false when invalid. Accepts one "::", a dotted IPv4
 *  tail and a "%zone" suffix. Allocation-free: the matcher parses one address per flow. */
function parseV6Groups(text: string): boolean {
  let end = text.indexOf('%');
  if (end < 0) end = text.length;
  let count = 0;
  let gap = -1; // index in the groups where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    let j = i;
    let value = 0;
    while (j < end && j - i < 5) {
      const h = hexValue(text.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
      j++;
    }
    if (j < end && text.charCodeAt(j) === 46) {
      const word = parseV4Word(text, i, end); // dotted IPv4 tail: runs to the end
      if (word < 0 || count > 6) return false;
      scratch[count++] = word >>> 16;
      scratch[count++] = word & 0xffff;
      break;
    }
    if (j === i || j - i > 4 || count === 8) return false;
    scratch[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== 58) return false;
    if (text.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === end) return false; // a trailing single ':'
    }
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  const zeros = 8 - count;
  for (let k = count - 1; k >= gap; k--) scratch[k + zeros] = scratch[k] as number;
  for (let k = gap; k < gap + zeros; k++) scratch[k] = 0;
  return true;
}

/** Parses into `out` (four words, most significant first; IPv4 in out[0]). Returns the family, or 0
 *  when the text is not an address. An IPv4-mapped IPv6 address yields 4. */
export function parseIpInto(text: string, out: Uint32Array): 0 | 4 | 6 {
  if (text.indexOf(':') < 0) {
    const word = parseV4Word(text);
    if (word < 0) return 0;
    out[0] = word;
    return 4;
  }
  if (!parseV6Groups(text)) return 0;
  for (let k = 0; k < 4; k++) out[k] = (((scratch[2 * k] as number) << 16) | (scratch[2 * k + 1] as number)) >>> 0;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3] as number;
    return 4;
  }
  return 6;
}

/** Parses an IPv4 or IPv6 address (an IPv6 zone suffix "%eth0" is ignored); undefined when invalid. */
export function parseIp(text: string): IpAddress | undefined {
  const words = new Uint32Array(4);
  const family = parseIpInto(text, words);
  if (family === 0) return undefined;
  return family === 4 ? { family, words: [words[0] as number] } : { family, words: Array.from(words) };
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return formatIPv4Word(ip.words[0] as number);
  const groups: number[] = [];
  for (const w of ip.words) groups.push(w >>> 16, w & 0xffff);
  return formatIPv6Groups(groups);
}

/** The canonical form of an address text, or undefined when it is not an address. */
export function canonicalIp(text: string): string | undefined {
  const ip = parseIp(text);
  return ip ? formatIp(ip) : undefined;
}

function maskWord(word: number, bits: number): number {
  if (bits >= 32) return word >>> 0;
  if (bits <= 0) return 0;
  return (word & (0xffffffff << (32 - bits))) >>> 0;
}

function masked(ip: IpAddress, prefix: number): IpAddress {
  return { family: ip.family, words: ip.words.map((w, i) => maskWord(w, prefix - i * 32)) };
}

/** Parses "address/prefix". `hostBitsSet` tells whether the address had bits beyond the prefix. */
export function parseCidr(text: string): { cidr: Cidr; hostBitsSet: boolean } | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return undefined;
  const prefixText = Number(bits);
  const addressText = text.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip) return undefined;
  // A mapped IPv6 block like ::ffff:10.0.0.0/104 is the IPv4 block 10.0.0.0/8.
  const mappedV6 = ip.family === 4 && addressText.includes(':');
  const prefix = mappedV6 ? prefixText - 96 : prefixText;
  if (prefix < 0 || prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  const base = masked(ip, prefix);
  return { cidr: { base, prefix }, hostBitsSet: base.words.some((w, i) => w !== ip.words[i]) };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.base)}/${cidr.prefix}`;
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  return cidrContainsWords(cidr, ip.family, ip.words);
}

/** Whether the address (family + words as parseIpInto leaves them) lies in the block. */
export function cidrContainsWords(cidr: Cidr, family: 4 | 6, words: ArrayLike<number>): boolean {
  if (cidr.base.family !== family) return false;
  const base = cidr.base.words;
  for (let i = 0; i < base.length; i++) {
    const bits = cidr.prefix - i * 32;
    if (bits <= 0) return true;
    if (maskWord(words[i] as number, bits) !== base[i]) return false;
  }
  return true;
}
