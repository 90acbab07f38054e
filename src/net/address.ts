// One canonical text form for IP addresses, used by every layer (the kernel's socket dumps, the
// queue's packets, DNS answers, rules), so a name learnt from a DNS answer and a flow's remote
// address meet under the same key: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, the longest
// run of two or more zero groups compressed, the first on a tie, `::ffff:a.b.c.d` for mapped IPv4).

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

/** Parses into `out` (four words, most significant first; IPv4 in out[0]) without allocating: the
 *  rule matcher parses one address per flow. Returns the family, or 0 when the text is not an
 *  address. Accepts one "::", a dotted IPv4 tail and a "%zone" suffix (ignored); an IPv4-mapped
 *  address stays IPv6 here (rules/ip.ts reads it as IPv4). */
export function parseAddressWords(text: string, out: Uint32Array): 0 | 4 | 6 {
  if (text.indexOf(':') < 0) {
    const word = parseV4Word(text);
    if (word < 0) return 0;
    out[0] = word;
    return 4;
  }
  if (!parseV6Groups(text)) return 0;
  for (let k = 0; k < 4; k++) out[k] = (((scratch[2 * k] as number) << 16) | (scratch[2 * k + 1] as number)) >>> 0;
  return 6;
}

const words = new Uint32Array(4);

/** Network-order bytes of a textual address, or undefined when it is not an IP address. */
export function parseAddress(text: string): Buffer | undefined {
  const family = parseAddressWords(text, words);
  if (family === 0) return undefined;
  const out = Buffer.alloc(family === 4 ? 4 : 16);
  for (let k = 0; k < out.length / 4; k++) out.writeUInt32BE(words[k] as number, k * 4);
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
