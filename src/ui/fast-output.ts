// A faster way for Ink 6 to turn a frame's text writes into the screen string.
//
// Ink composes every frame on a grid of one object per terminal cell: each written line is
// tokenised into per-character objects, copied into the grid, and the grid is encoded back into a
// string. At 200x50 that is 10,000 objects and ~15 ms a frame, whatever is drawn. flowtop's frames
// are rows of text that never overlap, so the same screen string is the lines themselves, placed
// side by side with spaces between. This module swaps Ink's `Output#get` for one that does exactly
// that when every write of the frame is such a line, and calls Ink's own method for anything else
// (clipping, overlapping writes, text above the frame), so the result is never different.
//
// Ink does not export its Output class; it is reached through the same module Ink itself loads.

interface WriteOperation {
  type: 'write';
  x: number;
  y: number;
  text: string;
  transformers: ReadonlyArray<(line: string, index: number) => string>;
}

interface OtherOperation {
  type: 'clip' | 'unclip';
}

interface OutputInstance {
  width: number;
  height: number;
  operations: ReadonlyArray<WriteOperation | OtherOperation>;
  caches: { getStringWidth(text: string): number };
}

interface FrameText {
  output: string;
  height: number;
}

type Get = (this: OutputInstance) => FrameText;

interface OutputClass {
  prototype: { get: Get };
}

/** Widths of lines seen in recent frames (rows repeat from frame to frame). */
const widths = new Map<string, number>();
const WIDTH_CACHE_LIMIT = 4_000;

function widthOf(output: OutputInstance, line: string): number {
  let w = widths.get(line);
  if (w === undefined) {
    w = output.caches.getStringWidth(line);
    if (widths.size >= WIDTH_CACHE_LIMIT) widths.clear();
    widths.set(line, w);
  }
  return w;
}

interface Piece {
  x: number;
  end: number;
  text: string;
}

/** The frame as a string, or undefined when its writes are not all side-by-side lines. */
export function composeLines(output: Pick<OutputInstance, "width" | "height" | "operations" | "caches">): FrameText | undefined {
  const rows: Array<Piece[] | undefined> = new Array(output.height);
  for (const op of output.operations) {
    if (op.type !== 'write') return undefined;
    if (!op.text) continue;
    // Ink skips the rest of a write whose first line is above the frame; leave that to Ink.
    if (op.y < 0 || op.x < 0) return undefined;
    const lines = op.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const y = op.y + i;
      if (y >= output.height) break;
      let line = lines[i]!;
      for (const transform of op.transformers) line = transform(line, i);
      const w = widthOf(output, line);
      if (w === 0) {
        // Nothing visible; Ink would still copy its escape codes in, so only skip the truly empty.
        if (line.length === 0) continue;
        return undefined;
      }
      const piece = { x: op.x, end: op.x + w, text: line };
      const row = rows[y];
      if (!row) {
        rows[y] = [piece];
        continue;
      }
      // Pieces of a row must come left to right without overlapping; else Ink decides.
      if (row[row.length - 1]!.end > piece.x) return undefined;
      row.push(piece);
    }
  }
  const out: string[] = new Array(output.height);
  for (let y = 0; y < output.height; y++) {
    const row = rows[y];
    if (!row) {
      out[y] = '';
      continue;
    }
    let s = '';
    let col = 0;
    for (const p of row) {
      if (p.x > col) s += ' '.repeat(p.x - col);
      s += p.text;
      col = p.end;
    }
    out[y] = s.trimEnd();
  }
  return { output: out.join('\n'), height: output.height };
}

/** How frames were composed since start (tests check the fast way is the one taken). */
export const composeStats = { fast: 0, ink: 0 };

let original: Get | undefined;
let outputClass: OutputClass | undefined;

export async function loadOutputClass(): Promise<OutputClass> {
  if (!outputClass) {
    const ink = import.meta.resolve('ink');
    const mod = (await import(new URL('./output.js', ink).href)) as { default: OutputClass };
    outputClass = mod.default;
  }
  return outputClass;
}

/** Turns the fast composition on (the default for the app) or off (Ink's own, for comparison). */
export async function setFastOutput(enabled: boolean): Promise<void> {
  const cls = await loadOutputClass();
  if (!original) original = cls.prototype.get;
  const inkGet = original;
  cls.prototype.get = enabled
    ? function (this: OutputInstance): FrameText {
        const frame = composeLines(this);
        if (frame) {
          composeStats.fast++;
          return frame;
        }
        composeStats.ink++;
        return inkGet.call(this);
      }
    : inkGet;
}
