// Sparklines: a row of values drawn as bar heights in one line of text, so traffic over time reads at
// a glance. The height is the meaning, never the colour: the Unicode set uses the eight block
// heights, the ASCII set (--ascii, NO_COLOR, a non-UTF-8 locale) eight characters that climb
// visibly (_ . - ~ = + * #). A step with no traffic is a blank; any traffic at all is at least the
// lowest mark, so a small burst beside a large one is never lost.

const UNICODE_LEVELS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'] as const;
const ASCII_LEVELS = ['_', '.', '-', '~', '=', '+', '*', '#'] as const;

/** The characters, lowest first (for a legend). */
export function sparkLevels(ascii: boolean): readonly string[] {
  return ascii ? ASCII_LEVELS : UNICODE_LEVELS;
}

/** Sums `values` into `width` equal runs (later runs take the remainder), or returns them as they
 *  are when they already fit. */
export function resample(values: readonly number[], width: number): number[] {
  const w = Math.max(Math.floor(width), 0);
  if (values.length <= w) return values.map(finite);
  const out = new Array<number>(w).fill(0);
  for (let i = 0; i < values.length; i++) out[Math.floor((i * w) / values.length)]! += finite(values[i]!);
  return out;
}

export interface SparklineOptions {
  ascii: boolean;
  /** The value drawn full height (default: the largest of `values`): pass a shared one to compare
   *  rows on one scale. */
  max?: number;
}

/**
 * `values` (bytes per step, oldest first) as exactly `width` characters: resampled to fit, padded on
 * the left with blanks when there are fewer (the newest step stays at the right edge).
 * The scale is the square root of the value: traffic spans orders of magnitude, and a linear scale
 * leaves everything but the largest step at the lowest mark.
 */
export function sparkline(values: readonly number[], width: number, options: SparklineOptions): string {
  const w = Math.max(Math.floor(width), 0);
  if (w === 0) return '';
  const steps = resample(values, w);
  const levels = sparkLevels(options.ascii);
  const max = options.max ?? steps.reduce((m, v) => Math.max(m, v), 0);
  const top = Math.sqrt(Math.max(max, 0));
  let line = ' '.repeat(w - steps.length);
  for (const v of steps) {
    if (!(v > 0) || top === 0) {
      line += ' ';
      continue;
    }
    const at = Math.ceil((Math.sqrt(Math.min(v, max)) / top) * levels.length) - 1;
    line += levels[Math.min(Math.max(at, 0), levels.length - 1)];
  }
  return line;
}

function finite(v: number): number {
  return Number.isFinite(v) && v > 0 ? v : 0;
}
