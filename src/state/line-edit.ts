// The filter line's editing, as in a shell: typed text is inserted, and the editing controls act
// wherever they occur in the input. A held Backspace or a slow link delivers several keys in one read
// (`"\x7f\x7f\x7f"`, `"ab\x7f"`), which the terminal library passes on as one string: each control in
// it must act, never be inserted.

const DEL = 0x7f;
const BS = 0x08;
const CTRL_U = 0x15;
const CTRL_W = 0x17;

/** `text` after the keys in `input`: Backspace (DEL or BS) erases a character, Ctrl-U the whole
 *  line, Ctrl-W the word before the end; other controls are dropped. */
export function editLine(text: string, input: string): string {
  let chars = [...text];
  for (const ch of input) {
    const code = ch.codePointAt(0)!;
    if (code === DEL || code === BS) chars.pop();
    else if (code === CTRL_U) chars = [];
    else if (code === CTRL_W) chars = eraseWord(chars);
    else if (code >= 0x20 && !(code >= 0x80 && code <= 0x9f)) chars.push(ch);
  }
  return chars.join('');
}

function eraseWord(chars: string[]): string[] {
  let end = chars.length;
  while (end > 0 && /\s/.test(chars[end - 1]!)) end--;
  while (end > 0 && !/\s/.test(chars[end - 1]!)) end--;
  return chars.slice(0, end);
}

export const ERASE_CHAR = '\x7f';
export const ERASE_LINE = '\x15';
export const ERASE_WORD = '\x17';
