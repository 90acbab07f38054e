// The full-screen terminal's lifecycle: alternate screen on start, and exactly one way back that
// every exit path takes (q, Ctrl-C, SIGTERM, SIGHUP, an uncaught error). Ink 6.8 has no alternate
// screen option of its own.
export const ENTER_ALT_SCREEN = '\x1b[?1049h\x1b[H';
export const LEAVE_ALT_SCREEN = '\x1b[?1049l';
/** Bracketed paste: the terminal marks pasted text, so the app takes it as text (into the filter),
 *  never as keys (a pasted "q" does not quit). See ui/key-decoder.ts. */
export const PASTE_MODE_ON = '\x1b[?2004h';
export const PASTE_MODE_OFF = '\x1b[?2004l';
export const SHOW_CURSOR = '\x1b[?25h';

export interface Terminal {
  /** Restore the screen once; later calls do nothing. */
  restore(): void;
}

export function enterFullScreen(out: NodeJS.WritableStream, onSignal: (signal: NodeJS.Signals | 'error', error?: unknown) => void): Terminal {
  out.write(ENTER_ALT_SCREEN + PASTE_MODE_ON);
  let restored = false;
  const handlers: Array<[string, (...args: unknown[]) => void]> = [];
  const on = (event: string, fn: (...args: unknown[]) => void) => {
    process.on(event, fn);
    handlers.push([event, fn]);
  };
  const restore = () => {
    if (restored) return;
    restored = true;
    for (const [event, fn] of handlers) process.off(event, fn);
    out.write(PASTE_MODE_OFF + LEAVE_ALT_SCREEN + SHOW_CURSOR);
  };
  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) on(signal, () => onSignal(signal));
  on('uncaughtException', (error) => onSignal('error', error));
  on('unhandledRejection', (error) => onSignal('error', error));
  // Last resort: whatever ends the process, the terminal comes back.
  on('exit', () => restore());
  return { restore };
}
