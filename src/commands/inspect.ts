// flowtop inspect PID... | --token HEX...  [--json]
// Shows what flowtop can verify about live processes: the token it would use, the trust level, and
// for anything not secure, the reason in plain words.
import type { Attribution } from '../attribution/types.js';
import { UsageError, UserError } from '../errors.js';
import { escapeJsonControls, replaceControls as safe } from '../text/controls.js';
import { parseFlags } from './flags.js';

const HELP = `Usage:
  flowtop inspect PID... [--json]        show what flowtop verifies about live processes
  flowtop inspect --token HEX... [--json] resolve Linux process tokens (48 hex digits) instead

Prints the token (hex), trust (secure / insecure / gone), executable path, code identity,
signer or package, SHA-256, user, parent chain, and for anything not secure the reason.
Exit status: 0 when every process was found, 1 when one was not (it is still reported).
`;

const PID_MAX = 4_194_304; // the kernel's upper bound for pid_max
const TOKEN_HEX = /^[0-9a-fA-F]{48}$/;

export interface InspectEntry {
  /** What was asked for. */
  query: { pid: number } | { token: string };
  token?: string;
  attribution?: Attribution;
  error?: string;
}

export async function run(argv: string[], write?: (text: string) => void): Promise<number> {
  const color = write === undefined && process.stdout.isTTY === true && !process.env.NO_COLOR;
  const out = write ?? ((text: string) => void process.stdout.write(text));
  return inspect(argv, out, color);
}

async function inspect(argv: string[], write: (text: string) => void, color: boolean): Promise<number> {
  const parsed = parseFlags('inspect', {
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, token: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (parsed.values.help) {
    write(HELP);
    return 0;
  }
  const tokens = parsed.values.token ?? [];
  const pids = parsed.positionals;
  if (tokens.length === 0 && pids.length === 0) throw new UsageError('inspect: give at least one PID, or --token HEX', 'for example: flowtop inspect $$');
  const queries: InspectEntry['query'][] = [
    ...pids.map((text) => ({ pid: parsePid(text) })),
    ...tokens.map((text) => ({ token: parseToken(text) })),
  ];
  if (process.platform !== 'linux') {
    throw new UserError(`inspect verifies processes through the Linux native layer, which is not available on ${process.platform}`, 'on macOS, attributions come from the flowtop network extension; run `flowtop` to see them');
  }

  const { createLinuxBackend } = await import('../native/linux/backend.js');
  const { makeLinuxToken } = await import('../native/linux/token.js');
  const entries: InspectEntry[] = queries.map((query) => {
    if ('token' in query) return { query, token: query.token };
    const token = makeLinuxToken(query.pid);
    return token ? { query, token: token.toString('hex') } : { query, error: `no process with PID ${query.pid} (it has exited, or never existed)` };
  });
  const backend = createLinuxBackend({ thread: 'inline' });
  try {
    const asked = entries.filter((e) => e.token !== undefined);
    const answers = await backend.resolve(asked.map((e) => Buffer.from(e.token!, 'hex')));
    asked.forEach((entry, i) => (entry.attribution = answers[i]));
  } finally {
    backend.close?.();
  }

  if (parsed.values.json) write(escapeJsonControls(JSON.stringify(entries, null, 2)) + '\n');
  else write(entries.map((e) => formatEntry(e, color)).join('\n'));
  return entries.some((e) => e.error !== undefined) ? 1 : 0;
}

function parsePid(text: string): number {
  const pid = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!(pid >= 1 && pid <= PID_MAX)) throw new UsageError(`inspect: ${JSON.stringify(text)} is not a process ID (a whole number from 1 to ${PID_MAX})`, 'list processes with `ps -e`, or pass --token HEX');
  return pid;
}

function parseToken(text: string): string {
  if (!TOKEN_HEX.test(text)) throw new UsageError(`inspect: ${JSON.stringify(text.slice(0, 60))} is not a Linux process token (48 hex digits, 24 bytes)`, 'copy the token shown by `flowtop inspect PID` or `flowtop list --json`');
  const hex = text.toLowerCase();
  if (hex.startsWith('00000000')) throw new UsageError('inspect: the token names PID 0, which is not a process', 'copy the token shown by `flowtop inspect PID`');
  return hex;
}

const TRUST_WORDS: Record<Attribution['trust'], string> = {
  secure: 'secure (verified through a pidfd)',
  insecure: 'INSECURE — read by PID only, not verified',
  gone: 'gone — the process this token named no longer runs',
  pending: 'pending',
};

/** Human-readable block for one entry. */
export function formatEntry(entry: InspectEntry, color = false): string {
  // Anything not verified is shown in red, as a warning (the seed threads: unverified names in red).
  const red = (text: string) => (color ? `\x1b[31m${text}\x1b[39m` : text);
  const green = (text: string) => (color ? `\x1b[32m${text}\x1b[39m` : text);
  const head = 'pid' in entry.query ? `PID ${entry.query.pid}` : `token ${entry.query.token}`;
  if (entry.error) return `${head}\n  error     ${red(safe(entry.error))}\n`;
  const a = entry.attribution;
  // Names, paths and arguments come from the process itself: no escapes or bidi controls pass.
  const lines = [`${head}${a?.name ? `  ${safe(a.name)}` : ''}`];
  const row = (label: string, value: string | undefined) => {
    if (value !== undefined && value !== '') lines.push(`  ${label.padEnd(9)} ${value}`);
  };
  row('token', entry.token);
  if (!a) return [...lines, '  trust     unknown (no answer)', ''].join('\n');
  row('trust', a.trust === 'secure' ? green(TRUST_WORDS[a.trust]) : red(TRUST_WORDS[a.trust]));
  if (a.trust !== 'secure' && a.reason) row('reason', red(`${safe(a.reason.message)} [${a.reason.call}${a.reason.errno ? `: ${a.reason.errno}` : ''}${a.reason.code !== undefined ? ` ${a.reason.code}` : ''}]`));
  if ('token' in entry.query && a.pid !== undefined) row('pid', String(a.pid));
  row('path', a.path && safe(a.path));
  if (a.exeChanged) row('warning', red(a.exeChanged === 'deleted' ? (a.path?.startsWith('/memfd:') ? 'the executable is an in-memory file (memfd), not a file on disk' : 'the executable was deleted from disk after the process started') : 'the file at this path was replaced after the process started; the identity is of the code that runs'));
  row('identity', a.identity && safe(a.identity));
  row('signer', a.signer && safe(a.signer.label));
  if (a.signer?.kind === 'modified') row('warning', red(`the executable differs from the checksum recorded by package ${a.signer.package ?? ''}`.trim()));
  row('sha256', a.sha256);
  if (a.uid !== undefined) row('user', safe(`${a.user ?? '?'} (uid ${a.uid})`));
  row('cmdline', a.cmdline && safe(a.cmdline.map(quoteArg).join(' ')));
  if (a.parents && a.parents.length > 0) row('parents', safe(a.parents.map((p) => `${p.pid} ${p.name}${p.path ? ` (${p.path})` : ''}`).join(' ← ')));
  return lines.join('\n') + '\n';
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
