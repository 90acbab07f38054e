// Text commands (`rules list`, `rules test`, `inspect` without --json) print arrows and ellipses;
// where the terminal cannot show them (NO_COLOR, a non-UTF-8 locale: see wantAscii) their writes
// pass through the same ASCII table as the TUI. Machine output (--json, --jsonl, rules export) is
// data and is never rewritten.
import { styledWrite } from './plain-output.js';

const MACHINE_FLAGS = new Set(['--json', '--jsonl', '--csv']);

/** Whether `flowtop COMMAND ARGV` prints text for people (as opposed to data for programs). */
export function printsText(command: string, argv: readonly string[]): boolean {
  if (command !== 'rules' && command !== 'inspect' && command !== 'history') return false;
  if (argv.some((a) => MACHINE_FLAGS.has(a))) return false;
  return !(command === 'rules' && argv[0] === 'export');
}

/** Rewrites what is written to `stream` to ASCII from now on. */
export function asciiWrites(stream: NodeJS.WriteStream): void {
  stream.write = styledWrite(stream, { color: true, ascii: true });
}
