// `flowtop history`: what connected, from the history file the agent (or the TUI's passive monitor)
// records. Lists flows, ranks processes/hosts/domains/users by traffic, lists events. Reads the
// agent's file when this user may (root, group flowtop), else the user's own.
import { accessSync, constants, existsSync } from 'node:fs';
import { UsageError, UserError } from '../errors.js';
import { parseFlags } from './flags.js';
import { bytes } from '../ui/format.js';
import type { EventEntry, FlowEntry, HistoryReader, TopBy, TopEntry } from '../history/query.js';
import { AGENT_HISTORY_PATH, userHistoryPath } from '../history/paths.js';
import { expectErrno } from '../errno.js';

const HELP = `Usage: flowtop history [--since 24h] [--until TIME] [--process NAME | --identity ID]
                       [--host H | --domain D] [--action allow|block] [--limit N] [--json | --csv] [--db PATH | --socket PATH]
       flowtop history top --by process|host|domain|user [--since 24h] [--until TIME] [--limit N] [--json | --csv] [--db PATH | --socket PATH]
       flowtop history events [--since 30d] [--until TIME] [--limit N] [--json | --csv] [--db PATH | --socket PATH]

What connected, as recorded by the agent (${AGENT_HISTORY_PATH}, readable by root and group
flowtop) or by the TUI's passive monitor ($XDG_STATE_HOME/flowtop/history.db).

  --since TIME    start of the window: a duration back from now (90s, 30m, 24h, 7d) or a date and time
                  (2026-12-01, 2026-12-01T14:00, local time; or ISO 8601 with a zone)
  --until TIME    end of the window (default: now), same forms
  --process NAME  flows of programs with this name or path
  --identity ID   flows of one code identity (sha256:…, package:NAME:PATH; see \`history top --by process --json\`)
  --host H        flows to this host name or address
  --domain D      flows to host names under this registrable domain
  --action A      allow or block
  --by WHAT       (top) rank by process, host, domain or user: bytes and connections
  --limit N       most rows (default: 1000 flows, 20 ranked, 1000 events)
  --json, --csv   data for programs instead of a table
  --db PATH       read this history file (default: the agent's when readable, else your own)
  --socket PATH   the agent to ask where it records (default: FLOWTOP_SOCKET, else the local agent's
                  socket when it answers; an agent that does not answer is taken to record into
                  ${AGENT_HISTORY_PATH})
`;

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** A window edge: "24h" back from now, or a date/time. Undefined when it is neither. */
export function parseWhen(text: string, now: number): number | undefined {
  const d = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/.exec(text.trim());
  if (d) return now - Number(d[1]) * UNITS[d[2]!]!;
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) return undefined;
  const t = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text.trim()) ? `${text.trim()}T00:00` : text.trim().replace(' ', 'T')).getTime();
  return Number.isFinite(t) ? t : undefined;
}

interface Common {
  since: number;
  until: number;
  limit?: number;
  format: 'text' | 'json' | 'csv';
  db?: string;
  /** --socket: the agent to ask where it records. */
  sockets: string[];
}

function common(sub: string, v: { since?: string; until?: string; limit?: string; json?: boolean; csv?: boolean; db?: string; socket?: string[] }, defaultSince: string, now: number): Common {
  const cmd = sub ? `history ${sub}` : 'history';
  const since = parseWhen(v.since ?? defaultSince, now);
  if (since === undefined) throw new UsageError(`${cmd}: --since must be a duration (24h, 7d, 30m) or a date (2026-12-01, 2026-12-01T14:00), got "${v.since}"`, `run \`flowtop history --help\` for the usage`);
  const until = v.until !== undefined ? parseWhen(v.until, now) : now + 1;
  if (until === undefined) throw new UsageError(`${cmd}: --until must be a duration (1h) or a date (2026-12-01T14:00), got "${v.until}"`, `run \`flowtop history --help\` for the usage`);
  if (until <= since) throw new UsageError(`${cmd}: --until must be later than --since`, `run \`flowtop history --help\` for the usage`);
  let limit: number | undefined;
  if (v.limit !== undefined) {
    limit = Number(v.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000_000) throw new UsageError(`${cmd}: --limit must be an integer 1..10000000, got "${v.limit}"`, `run \`flowtop history --help\` for the usage`);
  }
  if (v.json && v.csv) throw new UsageError(`${cmd}: choose one of --json and --csv`, `run \`flowtop history --help\` for the usage`);
  if (v.db !== undefined && v.db === '') throw new UsageError(`${cmd}: --db needs a file`, `run \`flowtop history --help\` for the usage`);
  if (v.db !== undefined && v.socket !== undefined) throw new UsageError(`${cmd}: choose one of --db and --socket`, `run \`flowtop history --help\` for the usage`);
  return { since, until, ...(limit !== undefined ? { limit } : {}), format: v.json ? 'json' : v.csv ? 'csv' : 'text', ...(v.db !== undefined ? { db: v.db } : {}), sockets: v.socket ?? [] };
}

const COMMON_OPTIONS = {
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  csv: { type: 'boolean' },
  db: { type: 'string' },
  socket: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which file to read: --db; else where the agent says it records (its hello's mode.history: the
 *  agent at --socket / FLOWTOP_SOCKET, which must answer, or the default socket's when one answers),
 *  when this user may read it (root, group flowtop); else the user's own. */
export async function chooseHistoryFile(db: string | undefined, sockets: readonly string[], env: NodeJS.ProcessEnv): Promise<{ path: string; note?: string }> {
  if (db !== undefined) return { path: db };
  const own = userHistoryPath(env);
  const agent = await agentHistory(sockets, env);
  if (agent.path === undefined) {
    if (existsSync(own) && !agent.asked) return { path: own, note: `reading your own history (${own}): ${agent.why}` };
    throw new UserError(`no history to read: ${agent.why}`, 'flowtop history --db PATH reads a history file');
  }
  const agentPath = agent.path;
  if (existsSync(agentPath)) {
    try {
      accessSync(agentPath, constants.R_OK);
      return { path: agentPath };
    } catch (error) {
      expectErrno(error, ['EACCES', 'EPERM']);
      if (existsSync(own) && !agent.asked) return { path: own, note: `reading your own history (${own}): the agent's (${agentPath}) is for root and group flowtop` };
      throw new UserError(`cannot read the agent's history ${agentPath}: it is for root and group flowtop, and you are not in that group`, 'sudo usermod -aG flowtop $USER, then log in again');
    }
  }
  if (agent.asked) throw new UserError(`no history yet: the agent records into ${agentPath}, which does not exist yet`, 'it is made when the agent records its first flow');
  if (existsSync(own)) return { path: own };
  throw new UserError(`no history yet: neither the agent's (${agentPath}) nor yours (${own}) exists`, 'the agent records while it runs (sudo flowtop agent); the TUI records while its passive monitor runs');
}

/** Where the agent records. `asked`: the person named the agent (--socket, FLOWTOP_SOCKET), so its
 *  answer is the only one wanted. `path` undefined: it records nothing (`why` says so). An agent that
 *  does not answer, or does not say (an older one), is taken to record into the default file. */
async function agentHistory(sockets: readonly string[], env: NodeJS.ProcessEnv): Promise<{ path?: string; why?: string; asked: boolean }> {
  const { explicitSocketPaths, defaultSocketPath } = await import('../source/paths.js');
  const { probeSocket } = await import('../source/probe.js');
  const explicit = explicitSocketPaths(sockets, env);
  const socket = explicit[0] ?? defaultSocketPath();
  const asked = explicit.length > 0;
  if (!asked && !existsSync(socket)) return { path: AGENT_HISTORY_PATH, asked };
  const probe = await probeSocket(socket, asked ? 5000 : 1500);
  if (!probe.usable) {
    if (!asked) return { path: AGENT_HISTORY_PATH, asked };
    throw new UserError(`history: cannot ask the agent where it records: ${probe.why}`, probe.denied ? 'the agent serves root and group flowtop: sudo usermod -aG flowtop $USER, then log in again' : 'flowtop history --db PATH reads a history file');
  }
  const said = probe.hello?.mode?.history;
  if (said === 'off') return { why: `the agent (${socket}) records no history (started with --no-history, or it could not use its file)`, asked };
  return { path: said ?? AGENT_HISTORY_PATH, asked };
}

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const sub = argv[0] === 'top' || argv[0] === 'events' ? argv[0] : '';
  const rest = sub ? argv.slice(1) : argv;
  const now = Date.now();
  const write = (s: string): void => void out.write(s);
  if (sub === 'top') {
    const { values } = parseFlags('history top', { args: rest, options: { ...COMMON_OPTIONS, by: { type: 'string' } }, allowPositionals: false });
    if (values.help) {
      write(HELP);
      return 0;
    }
    const by = values.by ?? 'process';
    if (!['process', 'host', 'domain', 'user'].includes(by)) throw new UsageError(`history top: --by must be process, host, domain or user, got "${by}"`, 'run `flowtop history --help` for the usage');
    const c = common('top', values, '24h', now);
    return withReader(c, env, (reader) => {
      const rows = reader.top({ by: by as TopBy, since: c.since, until: c.until, limit: c.limit ?? 20 });
      write(formatTop(rows, by as TopBy, c.format));
    });
  }
  if (sub === 'events') {
    const { values } = parseFlags('history events', { args: rest, options: COMMON_OPTIONS, allowPositionals: false });
    if (values.help) {
      write(HELP);
      return 0;
    }
    const c = common('events', values, '30d', now);
    return withReader(c, env, (reader) => write(formatEvents(reader.events({ since: c.since, until: c.until, limit: c.limit ?? 1000 }), c.format)));
  }
  const { values, positionals } = parseFlags('history', {
    args: rest,
    options: { ...COMMON_OPTIONS, process: { type: 'string' }, identity: { type: 'string' }, host: { type: 'string' }, domain: { type: 'string' }, action: { type: 'string' } },
    allowPositionals: true,
  });
  if (values.help) {
    write(HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`history: unknown subcommand "${positionals[0]}" (top or events)`, 'run `flowtop history --help` for the usage');
  if (values.process !== undefined && values.identity !== undefined) throw new UsageError('history: choose one of --process and --identity', 'run `flowtop history --help` for the usage');
  if (values.host !== undefined && values.domain !== undefined) throw new UsageError('history: choose one of --host and --domain', 'run `flowtop history --help` for the usage');
  if (values.action !== undefined && values.action !== 'allow' && values.action !== 'block') throw new UsageError(`history: --action must be allow or block, got "${values.action}"`, 'run `flowtop history --help` for the usage');
  for (const k of ['process', 'identity', 'host', 'domain'] as const) {
    if (values[k] === '') throw new UsageError(`history: --${k} needs a value`, 'run `flowtop history --help` for the usage');
  }
  const c = common('', values, '24h', now);
  return withReader(c, env, (reader) => {
    const flows = reader.flows({
      since: c.since, until: c.until, limit: c.limit ?? 1000,
      ...(values.process !== undefined ? { process: values.process } : {}),
      ...(values.identity !== undefined ? { identity: values.identity } : {}),
      ...(values.host !== undefined ? { host: values.host } : {}),
      ...(values.domain !== undefined ? { domain: values.domain } : {}),
      ...(values.action !== undefined ? { action: values.action as 'allow' | 'block' } : {}),
    });
    write(formatFlows(flows, c.format));
  });
}

async function withReader(c: Common, env: NodeJS.ProcessEnv, use: (reader: HistoryReader) => void): Promise<number> {
  const { HistoryReader: Reader } = await import('../history/query.js');
  const { HistoryRefused } = await import('../history/schema.js');
  const chosen = await chooseHistoryFile(c.db, c.sockets, env);
  if (chosen.note && c.format === 'text') process.stderr.write(`flowtop: ${chosen.note}\n`);
  let reader;
  try {
    reader = Reader.open(chosen.path);
  } catch (error) {
    if (error instanceof HistoryRefused) {
      const denied = /unable to open|permission denied/i.test(error.message);
      throw new UserError(`history: ${error.message}`, denied ? 'the agent\'s history is for root and group flowtop: sudo usermod -aG flowtop $USER, then log in again' : undefined);
    }
    throw error;
  }
  try {
    use(reader);
  } catch (error) {
    throw new UserError(`history: reading ${chosen.path} failed: ${(error as Error).message}`);
  } finally {
    reader.close();
  }
  return 0;
}

// ---- output ----

function time(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function who(p: FlowEntry['process'], trust: FlowEntry['trust']): string {
  return p.name ?? p.path ?? p.identity ?? (trust === 'gone' ? '(exited before it was identified)' : '(owner not found)');
}

function csvCell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csv(header: string[], rows: unknown[][]): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Control characters in recorded names (a program may name itself anything) never reach the terminal. */
function safe(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

export function formatFlows(flows: FlowEntry[], format: Common['format']): string {
  if (format === 'json') return JSON.stringify(flows, null, 2) + '\n';
  if (format === 'csv') {
    return csv(
      ['start', 'end', 'action', 'by', 'rule', 'decider', 'process', 'path', 'identity', 'trust', 'uid', 'parent', 'protocol', 'direction', 'remote', 'port', 'host', 'rx', 'tx'],
      flows.map((f) => [new Date(f.start).toISOString(), f.end !== undefined ? new Date(f.end).toISOString() : '', f.action, f.by, f.rule, f.decider, f.process.name, f.process.path, f.process.identity, f.trust, f.uid, f.parent, f.protocol, f.direction, f.remote.address, f.remote.port, f.host, f.rx, f.tx]),
    );
  }
  if (flows.length === 0) return 'no flows in that window\n';
  return table(
    ['TIME', 'ACTION', 'BY', 'PROCESS', 'UID', 'PROTO', 'REMOTE', 'RX', 'TX'],
    flows.map((f) => [
      time(f.start), f.action, f.by === 'rule' && f.rule ? `rule ${f.rule}` : f.by === 'user' && f.decider ? safe(`user ${f.decider}`) : f.by, safe(who(f.process, f.trust)) + (f.trust === 'secure' || (f.trust === 'gone' && !f.process.name && !f.process.path) ? '' : ` (${f.trust})`),
      f.uid !== undefined ? String(f.uid) : '-', f.protocol, safe(`${f.host ?? f.remote.address}:${f.remote.port}`), f.rx !== undefined ? bytes(f.rx) : '-', f.tx !== undefined ? bytes(f.tx) : '-',
    ]),
  );
}

export function formatTop(rows: TopEntry[], by: TopBy, format: Common['format']): string {
  if (format === 'json') return JSON.stringify(rows, null, 2) + '\n';
  if (format === 'csv') return csv(['key', 'label', 'rx', 'tx', 'flows', 'first_seen'], rows.map((r) => [r.key, r.label, r.rx, r.tx, r.flows, r.firstSeen !== undefined ? new Date(r.firstSeen).toISOString() : '']));
  if (rows.length === 0) return 'no traffic in that window\n';
  return table(
    [by.toUpperCase(), 'RX', 'TX', 'FLOWS', ...(by === 'process' ? ['IDENTITY'] : [])],
    rows.map((r) => [safe(r.label), bytes(r.rx), bytes(r.tx), String(r.flows), ...(by === 'process' ? [safe(r.key || '-')] : [])]),
  );
}

export function formatEvents(events: EventEntry[], format: Common['format']): string {
  if (format === 'json') return JSON.stringify(events, null, 2) + '\n';
  if (format === 'csv') return csv(['time', 'kind', 'process', 'identity', 'rule', 'detail'], events.map((e) => [new Date(e.time).toISOString(), e.kind, e.process?.name, e.process?.identity, e.rule, e.detail]));
  if (events.length === 0) return 'no events in that window\n';
  return table(['TIME', 'EVENT', 'DETAIL'], events.map((e) => [time(e.time), e.kind, safe(e.detail)]));
}
