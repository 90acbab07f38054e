// The alert for new pending flows: a terminal bell (BEL), and optionally an OSC 9 notification,
// which terminals such as iTerm2, kitty, WezTerm and Windows Terminal show as a desktop notice.
// Neither moves the cursor, so writing them between Ink's frames leaves the screen intact.
import { flowLabel } from './prompt.js';
import type { FlowRow } from '../state/types.js';
import { clean } from '../ui/format.js';

export interface BellOptions {
  write(text: string): void;
  now(): number;
  /** Also send an OSC 9 notification naming the flow. */
  notify: boolean;
  /** A burst of new flows rings once: at most one alert per this many ms (default 1 s). */
  minGapMs?: number;
}

export const BEL = '\x07';

/** OSC 9 with the String Terminator; text from outside is cleaned of control characters. */
export function osc9(text: string): string {
  return `\x1b]9;${clean(text).slice(0, 200)}\x1b\\`;
}

export function createBell(options: BellOptions): (flows: readonly FlowRow[]) => void {
  const gap = options.minGapMs ?? 1_000;
  let last = Number.NEGATIVE_INFINITY;
  return (flows) => {
    if (flows.length === 0) return;
    const now = options.now();
    if (now - last < gap) return;
    last = now;
    let text = BEL;
    if (options.notify) {
      const more = flows.length > 1 ? ` (+${flows.length - 1} more)` : '';
      text += osc9(`flowtop: ${flowLabel(flows[0]!)} waits for a verdict${more}`);
    }
    options.write(text);
  };
}
