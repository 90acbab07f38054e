// Raw reads → single keys: a run of text is split into whole characters with the flags Ink gives a
// key typed alone; an escape sequence stays one key; a bracketed paste stays text.
import { describe, expect, it } from 'vitest';
import { KeyDecoder, type KeyEvent } from '../../src/ui/key-decoder.js';

const short = (events: KeyEvent[]) =>
  events.map((e) => ('paste' in e ? `paste:${e.paste}` : [e.input, ...Object.entries(e.key).filter(([, on]) => on).map(([k]) => k)].join('+')));

describe('KeyDecoder', () => {
  it('splits a run into its characters, whole code points, with the flags of each', () => {
    const d = new KeyDecoder();
    expect(short(d.decode('1/zZ'))).toEqual(['1', '/', 'z', 'Z+shift']);
    expect(short(d.decode('é😀\r\t\x7f\x08\x15 '))).toEqual(['é', '😀', '+return', '+tab', '+delete', '+backspace', 'u+ctrl', ' ']);
  });

  it('keeps an escape sequence whole: arrows, paging, Shift-Tab, Delete, Alt+key; an unknown one is no key', () => {
    const d = new KeyDecoder();
    expect(short([...d.decode('\x1b[A'), ...d.decode('\x1bOB'), ...d.decode('\x1b[6~'), ...d.decode('\x1b[Z'), ...d.decode('\x1b[3~'), ...d.decode('\x1b')])).toEqual([
      '+upArrow', '+downArrow', '+pageDown', '+shift+tab', '+delete', '+escape+meta',
    ]);
    expect(short(d.decode('\x1bq'))).toEqual(['q+meta']);
    expect(short(d.decode('\x1b[15~'))).toEqual(['']);
  });

  it('holds pasted text together until the paste ends, whatever it contains', () => {
    const d = new KeyDecoder();
    expect(d.decode('\x1b[200~')).toEqual([]);
    expect(short(d.decode('q\r1'))).toEqual(['paste:q\r1']);
    expect(d.decode('\x1b[201~')).toEqual([]);
    expect(short(d.decode('q'))).toEqual(['q']);
  });
});
