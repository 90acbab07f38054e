// Sparklines as a person reads them: blank where nothing moved, the tallest mark at the busiest step,
// every character ASCII in ASCII mode, always exactly as wide as asked.
import { describe, expect, it } from 'vitest';
import { resample, sparkline } from '../../src/ui/sparkline.js';

describe('sparkline', () => {
  it('draws silence as blanks, the peak full height, and a small burst still visibly', () => {
    const line = sparkline([0, 10, 0, 1_000_000, 0], 5, { ascii: false });
    expect(line).toHaveLength(5);
    expect(line[0]).toBe(' ');
    expect(line[2]).toBe(' ');
    expect(line[3]).toBe('█');
    expect(line[1]).not.toBe(' '); // 10 bytes beside a megabyte: still a mark
  });

  it('climbs with the value', () => {
    const line = sparkline([1, 4, 16, 64, 256, 1024, 4096, 16384], 8, { ascii: false });
    const heights = [...line].map((c) => '▁▂▃▄▅▆▇█'.indexOf(c));
    for (let i = 1; i < heights.length; i++) expect(heights[i]).toBeGreaterThanOrEqual(heights[i - 1]!);
    expect(heights.at(-1)).toBe(7);
  });

  it('is pure ASCII in ASCII mode, with the same shape', () => {
    const line = sparkline([0, 5, 50, 500, 5000], 5, { ascii: true });
    expect(line).toMatch(/^[ -~]{5}$/);
    expect(line[0]).toBe(' ');
    expect(line[4]).toBe('#');
  });

  it('fits any number of steps into the width, newest at the right', () => {
    expect(sparkline(new Array(1440).fill(1), 30, { ascii: true })).toBe('#'.repeat(30));
    const short = sparkline([7, 7], 6, { ascii: true });
    expect(short).toBe('    ##');
    expect(sparkline([1, 2, 3], 0, { ascii: false })).toBe('');
  });

  it('draws rows on a shared scale when given one', () => {
    expect(sparkline([100], 1, { ascii: true, max: 100 })).toBe('#');
    expect(sparkline([1], 1, { ascii: true, max: 10_000 })).toBe('_');
  });

  it('ignores values that are not numbers of bytes', () => {
    expect(sparkline([Number.NaN, -5, Number.POSITIVE_INFINITY, 3], 4, { ascii: true })).toBe('   #');
  });

  it('resamples by summing', () => {
    expect(resample([1, 1, 1, 1, 2, 2], 3)).toEqual([2, 2, 4]);
  });
});
