// Key presses for Ink apps under ink-testing-library: one key per write, then wait for the frame
// to change (or for a condition), failing fast with the last frame when it does not come.
import type { render } from 'ink-testing-library';

type Instance = ReturnType<typeof render>;

export const KEY = {
  up: '\x1b[A',
  down: '\x1b[B',
  pageUp: '\x1b[5~',
  pageDown: '\x1b[6~',
  home: '\x1b[H',
  end: '\x1b[F',
  tab: '\t',
  shiftTab: '\x1b[Z',
  enter: '\r',
  escape: '\x1b',
  backspace: '\x7f',
  delete: '\x1b[3~',
  ctrlB: '\x02',
  ctrlF: '\x06',
  ctrlC: '\x03',
  ctrlU: '\x15',
  ctrlW: '\x17',
} as const;

/** Strip colour codes so text assertions read like the screen. */
export function plain(frame: string | undefined): string {
  // eslint-disable-next-line no-control-regex
  return (frame ?? '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}

export async function waitForFrame(instance: Instance, ok: (frame: string) => boolean, timeoutMs = 3_000, what = 'the expected frame'): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const frame = instance.lastFrame() ?? '';
    if (ok(frame)) return frame;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last frame:\n${plain(frame)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Wait until the app reads keys: Ink attaches its input listener after the first render. */
export async function ready(instance: Instance, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (instance.stdin.listenerCount('readable') === 0) {
    if (Date.now() > deadline) throw new Error('the app never started reading keys');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Press one key; resolve with the first frame for which `until` holds (default: any new frame). */
export async function press(instance: Instance, key: string, until?: (frame: string) => boolean, timeoutMs = 3_000): Promise<string> {
  const before = instance.frames.length;
  instance.stdin.write(key);
  return waitForFrame(instance, (f) => (until ? until(f) : instance.frames.length > before), timeoutMs, `a frame after pressing ${JSON.stringify(key)}`);
}

/** Type text one character at a time (each a separate key press). */
export async function type(instance: Instance, text: string): Promise<string> {
  let frame = '';
  for (const ch of text) frame = await press(instance, ch);
  return frame;
}
