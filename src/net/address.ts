// One canonical text form for IP addresses, used by every layer (the kernel's socket dumps, the
// queue's packets, DNS answers, rules), so a name learnt from a DNS answer and a flow's remote
// address meet under the same key: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, the longest
// run of two or more zero groups compressed, the first on a tie, `::ffff:a.b.c.d` for mapped IPv4).
import { isIP } from 'node:net';

/** Text form of 4 or 16 network-order bytes, or undefined for any other length. */
export function formatAddress(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return undefined;
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  return formatIPv6Groups(groups);
}

/** A dotted quad from an unsigned 32-bit word (most significant byte first). */
export function formatIPv4Word(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}`;
}

/** RFC 5952 text of eight 16-bit groups: lowercase hex, the longest run of two or more zero groups
 *  written "::" (the first on a tie). No IPv4 tail: the caller decides what a mapped address is. */
export function formatIPv6Groups(groups: ArrayLike<number>): string {
  let bestStart = -1;
  let bestLen = 1; // a single zero group is never compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => {
    let text = '';
    for (let k = from; k < to; k++) text += (k > from ? ':' : '') + (groups[k] as number).toString(16);
    return text;
  };
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Network-order bytes of a textual address, or undefined when it is not an IP address. */
export function parseAddress(text: string): Buffer | undefined {
  const kind = isIP(text);
  if (kind === 4) return Buffer.from(text.split('.').map(Number));
  if (kind !== 6) return undefined;
  const zone = text.indexOf('%');
  const bare = zone >= 0 ? text.slice(0, zone) : text;
  const halves = bare.split('::');
  const groupsOf = (s: string | undefined): number[] | undefined => {
    if (!s) return [];
    const out: number[] = [];
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const v4 = parseAddress(part);
        if (!v4 || v4.length !== 4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else out.push(parseInt(part, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0]);
  const tail = halves.length > 1 ? groupsOf(halves[1]) : [];
  if (!head || !tail || head.length + tail.length > 8) return undefined;
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/** The canonical form of any textual IP address (undefined when it is not one). */
export function canonicalAddress(text: string): string | undefined {
  const bytes = parseAddress(text);
  return bytes ? formatAddress(bytes) : undefined;
}

/** For `::ffff:a.b.c.d` the plain IPv4 form; otherwise undefined. Dual-stack sockets show IPv4 peers
 *  this way while DNS A records name the plain form. */
export function unmapIPv4(canonical: string): string | undefined {
  return canonical.startsWith('::ffff:') && canonical.includes('.') ? canonical.slice(7) : undefined;
}
