// Characters a terminal acts on instead of showing: C0 and C1 controls (ESC, CSI U+009B, …) and the
// bidirectional controls that reorder what follows them on screen (U+202E makes `exe.txt` read as
// `txt.exe`). Names, hosts and messages come from other processes and extensions, so every place
// such text reaches the terminal or a script's output goes through one of the two functions below.

/** C0, DEL, C1; ALM; LRM, RLM; LRE…RLO; LRI…PDI; the line and paragraph separators. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** The same, less C0 (see escapeJsonControls). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** For the screen: each unsafe character becomes `?`, so the text keeps its length and cannot steer
 *  the terminal. */
export function replaceControls(text: string): string {
  return text.replace(UNSAFE, '?');
}

/** For JSON output: JSON.stringify escapes C0 but passes C1 and bidi controls through raw. Escaping
 *  them as `\uXXXX` keeps the data exact for a program and inert on a terminal. Only valid on
 *  JSON text (inside strings the escape means the same character; outside strings these never occur;
 *  C0 is left alone: JSON.stringify escapes it in strings, and pretty-printing puts line feeds between). */
export function escapeJsonControls(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
