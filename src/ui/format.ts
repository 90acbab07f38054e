// Text formatting for cells: sizes, rates, ages, and width-aware padding. Names come from other
// processes, so control characters are replaced before anything reaches the terminal.
import { replaceControls } from '../text/controls.js';

/** Text from outside (process names, host names) made safe to print: no escapes, no newlines, no
 *  bidirectional overrides (see src/text/controls.ts). */
export function clean(text: string): string {
  return replaceControls(text);
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

export function displayWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += isWide(ch.codePointAt(0)!) ? 2 : 1;
  return w;
}

/** Cut to `width` columns, marking the cut with `…` (or `~` in ASCII mode). */
export function truncate(text: string, width: number, ascii = false): string {
  if (width <= 0) return '';
  if (displayWidth(text) <= width) return text;
  const mark = ascii ? '~' : '…';
  let out = '';
  let w = 0;
  for (const ch of text) {
    const cw = isWide(ch.codePointAt(0)!) ? 2 : 1;
    if (w + cw > width - 1) break;
    out += ch;
    w += cw;
  }
  return out + mark + ' '.repeat(Math.max(width - 1 - w, 0));
}

export function pad(text: string, width: number, align: 'left' | 'right' = 'left', ascii = false): string {
  const cut = truncate(text, width, ascii);
  const gap = ' '.repeat(Math.max(width - displayWidth(cut), 0));
  return align === 'left' ? cut + gap : gap + cut;
}

const UNITS = ['B', 'K', 'M', 'G', 'T'];

/** 1536 → "1.5K"; at most 5 characters. */
export function bytes(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0';
  let v = n;
  let u = 0;
  while (v >= 1000 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)}B`;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${UNITS[u]}`;
}

export function rate(bytesPerSecond: number): string {
  return bytesPerSecond > 0 ? `${bytes(bytesPerSecond)}/s` : '-';
}

/** 42_000 → "42s", 3_900_000 → "1h05m". */
export function age(ms: number): string {
  const s = Math.max(Math.floor(ms / 1000), 0);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}`;
  return `${Math.floor(h / 24)}d`;
}

export function percent(share: number | undefined): string {
  return share === undefined ? '-' : `${Math.round(share * 100)}%`;
}

export function hex(base64: string | undefined): string {
  if (!base64) return '-';
  return Buffer.from(base64, 'base64').toString('hex');
}

export function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
