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

export interface Bell {
  /** Flows that started waiting for a verdict. */
  (flows: readonly FlowRow[]): void;
  /** Something the history recorded as it happened (a program seen for the first time, a changed
   *  binary, a rule that started blocking), in words. */
  events(details: readonly string[]): void;
}

/** One bell for both kinds of alert: a burst of either rings once. */
export function createBell(options: BellOptions): Bell {
  const gap = options.minGapMs ?? 1_000;
  let last = Number.NEGATIVE_INFINITY;
  const ring = (count: number, first: () => string) => {
    if (count === 0) return;
    const now = options.now();
    if (now - last < gap) return;
    last = now;
    let text = BEL;
    if (options.notify) {
      const more = count > 1 ? ` (+${count - 1} more)` : '';
      text += osc9(`flowtop: ${first()}${more}`);
    }
    options.write(text);
  };
  const bell = (flows: readonly FlowRow[]) => ring(flows.length, () => `${flowLabel(flows[0]!)} waits for a verdict`);
  bell.events = (details: readonly string[]) => ring(details.length, () => details[0]!);
  return bell;
}
