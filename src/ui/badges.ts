// Trust badges. The meaning never rests on colour alone: each trust level has its own glyph, and
// an ASCII set for NO_COLOR and non-UTF-8 terminals.
import type { Trust } from '../attribution/types.js';

export interface Glyphs {
  badge: Record<Trust, string>;
  sortUp: string;
  sortDown: string;
  cursor: string;
  /** Separator between header items. */
  sep: string;
  /** Marks the typing position in the filter. */
  caret: string;
}

const UNICODE: Glyphs = {
  badge: { secure: '✔', insecure: '⚠', gone: '✖', pending: '…' },
  sortUp: '▲',
  sortDown: '▼',
  cursor: '›',
  sep: ' · ',
  caret: '▏',
};

const ASCII: Glyphs = {
  badge: { secure: '[ok]', insecure: '[!!]', gone: '[x]', pending: '[..]' },
  sortUp: '^',
  sortDown: 'v',
  cursor: '>',
  sep: ' | ',
  caret: '_',
};

export function glyphs(ascii: boolean): Glyphs {
  return ascii ? ASCII : UNICODE;
}

/** Colour for a trust level's badge; the insecure row is red as a whole (see rows). */
export const TRUST_COLOR: Record<Trust, string | undefined> = {
  secure: 'green',
  insecure: 'red',
  gone: undefined,
  pending: 'yellow',
};

/** ASCII when asked, when NO_COLOR is set, or when the locale is not UTF-8. */
export function wantAscii(env: NodeJS.ProcessEnv, flag: boolean): boolean {
  if (flag) return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return true;
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  if (locale === '') return false;
  return !/utf-?8/i.test(locale);
}
