// IP addresses and CIDR blocks for rule matching: parse once, compare as 32-bit words.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports) is the IPv4 address:
// a rule for 192.0.2.1 must match it.
import { formatIPv4Word, formatIPv6Groups, parseAddressWords } from '../net/address.js';

export interface IpAddress {
  family: 4 | 6;
  /** IPv4: one word; IPv6: four words, most significant first. Unsigned 32-bit values. */
  words: number[];
}

export interface Cidr {
  base: IpAddress;
  prefix: number;
}

/** Parses into `out` (four words, most significant first; IPv4 in out[0]). Returns the family, or 0
 *  when the text is not an address. An IPv4-mapped IPv6 address yields 4. */
export function parseIpInto(text: string, out: Uint32Array): 0 | 4 | 6 {
  const family = parseAddressWords(text, out);
  if (family === 6 && out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3] as number;
    return 4;
  }
  return family;
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
