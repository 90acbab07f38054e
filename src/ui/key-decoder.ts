// Raw terminal input → one key press at a time. Ink's input parser already cuts a read at each
// escape sequence, but hands a run of plain bytes on as one string ("1/zzz", "2p\r", "\x7f\x7f"):
// typed ahead, on a slow link or from `tmux send-keys`, several keys arrive in one read. Each must
// act in turn, so a run is split here into its characters (whole code points: a multi-byte UTF-8
// character is one key). Text between bracketed-paste markers stays together as one paste.

/** The key flags the key map reads (a subset of Ink's `Key`, which is assignable to it). */
export interface KeyFlags {
  upArrow: boolean;
  downArrow: boolean;
  leftArrow: boolean;
  rightArrow: boolean;
  pageUp: boolean;
  pageDown: boolean;
  home: boolean;
  end: boolean;
  return: boolean;
  escape: boolean;
  ctrl: boolean;
  shift: boolean;
  tab: boolean;
  backspace: boolean;
  delete: boolean;
  meta: boolean;
}

export type KeyEvent = { input: string; key: KeyFlags } | { paste: string };

const NO_FLAGS: KeyFlags = {
  upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageUp: false, pageDown: false, home: false, end: false,
  return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false,
};

const press = (input: string, flags: Partial<KeyFlags> = {}): KeyEvent => ({ input, key: { ...NO_FLAGS, ...flags } });

const ESC = '\x1b';
export const PASTE_START = '\x1b[200~';
export const PASTE_END = '\x1b[201~';

/** Escape sequences of the keys the app uses, as xterm, tmux, the Linux console and rxvt send them. */
const SEQUENCES: Record<string, Partial<KeyFlags>> = {
  '[A': { upArrow: true }, '[B': { downArrow: true }, '[C': { rightArrow: true }, '[D': { leftArrow: true },
  OA: { upArrow: true }, OB: { downArrow: true }, OC: { rightArrow: true }, OD: { leftArrow: true },
  '[5~': { pageUp: true }, '[6~': { pageDown: true },
  '[H': { home: true }, OH: { home: true }, '[1~': { home: true }, '[7~': { home: true },
  '[F': { end: true }, OF: { end: true }, '[4~': { end: true }, '[8~': { end: true },
  '[3~': { delete: true },
  '[Z': { tab: true, shift: true },
};

/** One character typed on its own, with the flags Ink 6.8 gives it. */
function charKey(ch: string): KeyEvent {
  const code = ch.codePointAt(0)!;
  if (ch === '\r' || ch === '\n') return press('', { return: true });
  if (ch === '\t') return press('', { tab: true });
  // Backspace sends DEL, which Ink reports as `delete`; BS (Ctrl-H) is `backspace`.
  if (code === 0x7f) return press('', { delete: true });
  if (code === 0x08) return press('', { backspace: true });
  if (code === 0x1b) return press('', { escape: true, meta: true });
  if (code > 0 && code < 0x20) return press(String.fromCharCode(code + 0x60), { ctrl: true });
  if (code === 0 || (code >= 0x80 && code <= 0x9f)) return press('');
  return press(ch, ch !== ch.toLowerCase() && ch === ch.toUpperCase() ? { shift: true } : {});
}

/** Decodes the input events Ink's parser emits (one escape sequence, or a run of plain text). Holds
 *  one bit of state: whether a bracketed paste is open. */
export class KeyDecoder {
  private pasting = false;

  decode(raw: string): KeyEvent[] {
    if (raw === PASTE_START) {
      this.pasting = true;
      return [];
    }
    if (raw === PASTE_END) {
      this.pasting = false;
      return [];
    }
    if (this.pasting) return raw ? [{ paste: raw }] : [];
    if (raw.startsWith(ESC)) return [this.sequence(raw)];
    return [...raw].map(charKey);
  }

  private sequence(raw: string): KeyEvent {
    if (raw === ESC || raw === ESC + ESC) return press('', { escape: true, meta: true });
    const known = SEQUENCES[raw.slice(1)];
    if (known) return press('', known);
    // Alt/Meta + a key: ESC then the key.
    const rest = raw.slice(1);
    if ([...rest].length === 1) {
      const inner = charKey(rest);
      return 'input' in inner ? { input: inner.input, key: { ...inner.key, meta: true } } : inner;
    }
    // Another escape sequence (a function key, a report the app did not ask for): no key the app uses.
    return press('');
  }
}
