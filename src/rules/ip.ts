// IP addresses and CIDR blocks for rule matching: parse once, compare as 32-bit words.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports) is the IPv4 address:
// a rule for 192.0.2.1 must match it.

export interface IpAddress {
  family: 4 | 6;
  /** IPv4: one word; IPv6: four words, most significant first. Unsigned 32-bit values. */
  words: number[];
}

export interface Cidr {
  base: IpAddress;
  prefix: number;
}

const V4_PART = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4Word(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let word = 0;
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined;
    word = word * 256 + Number(part);
  }
  return word;
}

function parseV6Groups(text: string): number[] | undefined {
  const zone = text.indexOf('%');
  const body = zone >= 0 ? text.slice(0, zone) : text;
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const side = (half: string, allowV4Tail: boolean): number[] | undefined => {
    if (half === '') return [];
    const groups: number[] = [];
    const items = half.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as string;
      if (allowV4Tail && i === items.length - 1 && item.includes('.')) {
        const word = parseV4Word(item);
        if (word === undefined) return undefined;
        groups.push(word >>> 16, word & 0xffff);
      } else if (HEX_GROUP.test(item)) {
        groups.push(parseInt(item, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  if (halves.length === 1) {
    const groups = side(halves[0] as string, true);
    return groups && groups.length === 8 ? groups : undefined;
  }
  const head = side(halves[0] as string, false);
  const tail = side(halves[1] as string, true);
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Parses an IPv4 or IPv6 address (an IPv6 zone suffix "%eth0" is ignored); undefined when invalid. */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const g = parseV6Groups(text);
    if (!g) return undefined;
    const words = [0, 2, 4, 6].map((i) => (((g[i] as number) << 16) | (g[i + 1] as number)) >>> 0);
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { family: 4, words: [words[3] as number] };
    return { family: 6, words };
  }
  const word = parseV4Word(text);
  return word === undefined ? undefined : { family: 4, words: [word] };
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const w = ip.words[0] as number;
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}`;
  }
  const groups: number[] = [];
  for (const w of ip.words) groups.push(w >>> 16, w & 0xffff);
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
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
  if (cidr.base.family !== ip.family) return false;
  const words = cidr.base.words;
  for (let i = 0; i < words.length; i++) {
    const bits = cidr.prefix - i * 32;
    if (bits <= 0) return true;
    if (maskWord(ip.words[i] as number, bits) !== words[i]) return false;
  }
  return true;
}
