// NO_COLOR and --ascii for everything the full-screen app writes. Ink colours through chalk, which
// ignores NO_COLOR, and truncates text with `…` whatever the app asks; so the terminal stream itself
// is filtered: colour parameters leave the SGR sequences (bold, dim and inverse stay, so the cursor
// row and emphasis still show), and in ASCII mode every other character becomes ASCII of the same
// width, so the layout Ink computed still lines up.

export interface OutputStyle {
  /** false: no colour (NO_COLOR). */
  color: boolean;
  /** true: ASCII only (--ascii, NO_COLOR, a non-UTF-8 locale). */
  ascii: boolean;
}

/** Colour is off when NO_COLOR is set to anything but the empty string (no-color.org). */
export function wantColor(env: NodeJS.ProcessEnv): boolean {
  return env.NO_COLOR === undefined || env.NO_COLOR === '';
}

const SGR = /\x1b\[([0-9;:]*)m/g;

/** The SGR parameters left once the colour ones are taken out. */
function withoutColour(params: string): string {
  const parts = params.split(';');
  const kept: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    const head = Number(p.split(':')[0]);
    if (head === 38 || head === 48 || head === 58) {
      // 38;5;N and 38;2;R;G;B carry their arguments as further parameters; 38:2::R:G:B does not.
      if (!p.includes(':')) i += parts[i + 1] === '5' ? 2 : parts[i + 1] === '2' ? 4 : 0;
      continue;
    }
    if ((head >= 30 && head <= 37) || head === 39 || (head >= 40 && head <= 47) || head === 49 || head === 59) continue;
    if ((head >= 90 && head <= 97) || (head >= 100 && head <= 107)) continue;
    kept.push(p);
  }
  return kept.join(';');
}

export function stripColour(text: string): string {
  if (!text.includes('\x1b[')) return text;
  return text.replace(SGR, (whole, params: string) => {
    if (params === '') return whole; // ESC[m resets: not a colour
    const kept = withoutColour(params);
    return kept === '' ? '' : `\x1b[${kept}m`;
  });
}

/** Single-column stand-ins for the marks the app and Ink use; anything else becomes `?`. */
const ASCII_FOR: Record<string, string> = {
  '…': '~', '→': '>', '←': '<', '·': '|', '│': '|', '─': '-', '▲': '^', '▼': 'v', '›': '>', '‹': '<',
  '▏': '_', '✔': '+', '✓': '+', '⚠': '!', '✖': 'x', '✗': 'x', '•': '*', '–': '-', '—': '-',
  '“': '"', '”': '"', '‘': "'", '’': "'", '×': 'x', '≥': '>', '≤': '<',
};

/** Characters a terminal draws two columns wide (CJK, Hangul, full-width forms, most emoji). */
function isWide(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd);
}

/** Combining marks and zero-width characters take no column: dropped. */
function isZeroWidth(cp: number): boolean {
  return (cp >= 0x300 && cp <= 0x36f) || cp === 0x200b || cp === 0x200c || cp === 0x200d || cp === 0xfe0f || cp === 0xfeff;
}

export function toAscii(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp < 0x80) out += ch;
    else if (isZeroWidth(cp)) continue;
    else out += ASCII_FOR[ch] ?? (isWide(cp) ? '??' : '?');
  }
  return out;
}

export function applyStyle(text: string, style: OutputStyle): string {
  let out = text;
  if (!style.color) out = stripColour(out);
  if (style.ascii) out = toAscii(out);
  return out;
}

/** `stream` with its writes passed through applyStyle; everything else (size, resize events,
 *  isTTY) is the real stream's. The stream itself is returned when there is nothing to filter. */
export function styledStream<S extends NodeJS.WriteStream>(stream: S, style: OutputStyle): S {
  if (style.color && !style.ascii) return stream;
  const write = styledWrite(stream, style);
  return new Proxy(stream, {
    get(target, property) {
      if (property === 'write') return write;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** `stream.write` as it is now, with what it is given passed through applyStyle first. Taken before
 *  any replacement, so it may itself be installed as `stream.write`. */
export function styledWrite(stream: NodeJS.WriteStream, style: OutputStyle): NodeJS.WriteStream['write'] {
  const original = stream.write as (...args: unknown[]) => boolean;
  const write = (chunk: unknown, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : chunk;
    const filtered = typeof text === 'string' ? applyStyle(text, style) : text;
    return original.call(stream, filtered, ...rest);
  };
  return write as NodeJS.WriteStream['write'];
}
