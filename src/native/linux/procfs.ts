// Readers and parsers for /proc/PID files. Every file is outside input: parsed defensively, and a file
// that does not parse is reported as undefined, never thrown past the caller.
import { closeSync, openSync, readSync } from 'node:fs';

const scratch = Buffer.allocUnsafe(64 * 1024);

/** Reads a small /proc file with one open, a few reads and a close (readFileSync also fstats, and
 *  /proc files report size 0). Returns a copy, at most 64 KiB: enough for stat, status and a cmdline
 *  prefix. Throws the fs error (code ENOENT/ESRCH/EACCES). */
export function readProcFile(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    let length = 0;
    while (length < scratch.length) {
      const n = readSync(fd, scratch, length, scratch.length - length, null);
      if (n <= 0) break;
      length += n;
    }
    return Buffer.from(scratch.subarray(0, length));
  } finally {
    closeSync(fd);
  }
}

export interface ProcStat {
  pid: number;
  /** The comm field without its parentheses (may contain spaces and ')'). */
  comm: string;
  state: string;
  ppid: number;
  /** Field 9: the task's PF_* flags (PF_EXITING 0x4 once it has started to exit). */
  flags: number;
  /** Field 22: start time in clock ticks since boot. */
  startTime: bigint;
}

/** Set in ProcStat.flags once the process has begun to exit: its memory, and with it /proc/PID/exe,
 *  may already be gone while it closes its files (a lingering socket can keep it there for seconds). */
export const PF_EXITING = 0x4;

/** Field numbers of /proc/PID/stat (proc(5), counting from 1). Both parsers below read by these. */
export const STAT_FIELD = { state: 3, ppid: 4, flags: 9, startTime: 22 } as const;

/** Parses the text of /proc/PID/stat. comm is whatever the process chose (up to 15 bytes, any
 *  characters, including ") "), so the fields are split after the LAST ')' in the line. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const comm = text.slice(open + 2, close);
  // Fields from 3 (state) on, separated by single spaces.
  const rest = text.slice(close + 2).trimEnd().split(' ');
  const at = (field: number) => rest[field - STAT_FIELD.state];
  const state = at(STAT_FIELD.state);
  const ppidText = at(STAT_FIELD.ppid);
  const flagsText = at(STAT_FIELD.flags);
  const startText = at(STAT_FIELD.startTime);
  if (state === undefined || ppidText === undefined || flagsText === undefined || startText === undefined) return undefined;
  if (!/^\d+$/.test(ppidText) || !/^\d+$/.test(flagsText) || !/^\d+$/.test(startText)) return undefined;
  return { pid, comm, state, ppid: Number(ppidText), flags: Number(flagsText), startTime: BigInt(startText) };
}

/** The start time (field 22) in the bytes of a /proc/PID/stat line of `pid`, or undefined when the line
 *  is not that shape: the same reading as parseProcStat, without making strings (the agent calls this
 *  for every new process that connects). comm may hold spaces and parentheses: the fields start after
 *  the last ')'. */
export function parseStartTime(b: Buffer, n: number, pid: number): bigint | undefined {
  let at = 0;
  let head = 0;
  while (at < n && b[at]! >= 0x30 && b[at]! <= 0x39) head = head * 10 + (b[at++]! - 0x30);
  if (at === 0 || head !== pid || b[at] !== 0x20 || b[at + 1] !== 0x28) return undefined;
  let close = n - 1;
  while (close > at && b[close] !== 0x29) close--;
  if (close <= at || b[close + 1] !== 0x20) return undefined;
  // the state field starts at close + 2; the start time follows one space per field in between
  let i = close + 2;
  for (let spaces = 0; spaces < STAT_FIELD.startTime - STAT_FIELD.state; i++) {
    if (i >= n) return undefined;
    if (b[i] === 0x20) spaces++;
  }
  let value = 0;
  const start = i;
  while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) value = value * 10 + (b[i++]! - 0x30);
  if (i === start || (i < n && b[i] !== 0x20 && b[i] !== 0x0a) || !Number.isSafeInteger(value)) return undefined;
  return BigInt(value);
}

/** Reads and parses /proc/PID/stat; throws the fs error (ENOENT/ESRCH when the process is gone). */
export function readProcStat(pid: number): ProcStat | undefined {
  return parseProcStat(readProcFile(`/proc/${pid}/stat`).toString('latin1'));
}

export interface ProcStatus {
  /** Real, effective, saved, filesystem uid. */
  uids: [number, number, number, number];
  ppid: number;
}

/** Parses the Uid: and PPid: lines of /proc/PID/status. */
export function parseProcStatus(text: string): ProcStatus | undefined {
  const uidLine = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/m.exec(text);
  const ppidLine = /^PPid:\s+(\d+)\s*$/m.exec(text);
  if (!uidLine || !ppidLine) return undefined;
  const uids = uidLine.slice(1, 5).map(Number) as [number, number, number, number];
  return { uids, ppid: Number(ppidLine[1]) };
}

/** Splits /proc/PID/cmdline (NUL-separated, usually NUL-terminated). Bounded so a huge argv stays cheap. */
export function parseCmdline(raw: Buffer, maxArgs = 64, maxChars = 4096): string[] {
  if (raw.length === 0) return [];
  const text = raw.subarray(0, maxChars).toString('utf8');
  const args = text.split('\0');
  if (args[args.length - 1] === '') args.pop();
  return args.slice(0, maxArgs);
}

/** /proc/PID/comm without its newline. */
export function parseComm(text: string): string {
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/** What the kernel appends to the /proc/PID/exe link when the file was unlinked. */
export const DELETED = ' (deleted)';

export function stripDeleted(link: string): string {
  return link.endsWith(DELETED) ? link.slice(0, -DELETED.length) : link;
}
