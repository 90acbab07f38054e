// flowtop rules list|add|rm|export|import — the rules from the command line. When an agent keeps rules
// on its socket, changes go through it (the running agent stays the only writer of its file);
// otherwise the rules file is edited through RuleStore (atomic writes).
import { UsageError, UserError } from '../errors.js';
import type { RuleIdentity, RuleEndpoint, RuleSpec } from '../protocol/messages.js';
import { writeFileAtomic } from '../rules/atomic-file.js';
import { serializeRulesDocument } from '../rules/document.js';
import { IMPORT_FORMATS, readImport, type ImportFormat } from '../rules/import/index.js';
import { describeAction, describeDuration, describeEndpoint, describeIdentity, describeRule, identityFromKey, singleLine } from '../rules/model.js';
import { parseRuleSpec } from '../rules/schema.js';
import { DEFAULT_RULES_PATH, RuleStore } from '../rules/store.js';
import { defaultSocketPath } from '../source/paths.js';
import { rulesTest, TEST_FLAGS, TEST_HELP } from './rules-test.js';
import { escapeJsonControls } from '../text/controls.js';
import { parse, usageError, type RulesIo, type Values } from './rules-common.js';
import { openTarget, type Target } from './rules-target.js';
import { policyCommand } from './rules-policy.js';
import { fleetTarget } from './rules-fleet.js';
export type { RulesIo } from './rules-common.js';

const HELP = `Usage:
  flowtop rules list [--json]                 show the rules
  flowtop rules add (--allow | --block [--reject]) (PROCESS [REMOTE] | REMOTE | --any)
                    [--port N|LOW-HIGH] [--protocol tcp|udp|icmp|other]
                    [--direction outbound|inbound] [--until TIME] [--note TEXT] [--priority N]
      PROCESS: --identity sha256:HEX | --identity package:NAME:/PATH | --package NAME --path PATH
               | --path PATH (path only: weaker, anyone who can write there matches) [--label TEXT]
      REMOTE:  --host NAME | --domain SUFFIX | --address IP | --cidr IP/PREFIX
      --any:   no process and no remote: the rule matches every program and every address
      TIME:    an ISO time (2026-12-31T18:00Z) or from now: 30m, 12h, 7d
      N:       0 to 1000000000; a higher priority wins before the most specific rule
               (imported rule sets use priorities to keep their firewall's order)
  flowtop rules rm ID                         remove a rule
  flowtop rules export [FILE]                 write all rules and the policy as JSON (stdout without FILE)
  flowtop rules import FILE|DIR [--format flowtop|lulu|opensnitch] [--dry-run]
                                              add rules from a flowtop export, a LuLu export, or
                                              OpenSnitch rule files (one file or the rules folder)
${TEST_HELP}  flowtop rules policy [--default allow|block] [--block-mode drop|reject]
                       [--block-unpackaged on|off] [--allow-packaged on|off]
                                              show or set what happens when no rule matches (edits the
                                              rules file; the agent reads it when it starts)
Fleet rules (docs/fleet.md, docs/rules.md): list, add and rm with --nats URL
  [--nats-creds FILE | --nats-user U --nats-password-file F] [--nats-prefix P] [--nats-insecure] and
  --all (every host) or --host-name NAME (one host); list without either shows every fleet rule.
  Agents enforce a change at once; a fleet rule cannot be removed through an agent's socket.
Where the rules live:
  --socket PATH   the agent to ask (default ${defaultSocketPath()}, or $FLOWTOP_SOCKET); a running
                  agent is asked first, so it stays the only writer of its rules file
  --rules PATH    edit this rules file directly (default ${DEFAULT_RULES_PATH} when no agent runs)
`;

export async function run(argv: string[], io?: Partial<RulesIo>): Promise<number> {
  return runRules(argv, {
    stdout: io?.stdout ?? ((t) => void process.stdout.write(t)),
    stderr: io?.stderr ?? ((t) => void process.stderr.write(t)),
    now: io?.now ?? Date.now,
    env: io?.env ?? process.env,
  });
}

const ADD_FLAGS = ['any', 'allow', 'block', 'reject', 'identity', 'package', 'path', 'label', 'host', 'domain', 'address', 'cidr', 'port', 'protocol', 'direction', 'until', 'note', 'priority'];
const FLAGS_FOR: Record<string, string[]> = {
  list: ['json'],
  add: ADD_FLAGS,
  rm: [],
  export: [],
  import: ['format', 'dry-run'],
  policy: ['default', 'block-mode', 'block-unpackaged', 'allow-packaged', 'json'],
  test: TEST_FLAGS,
};

export async function runRules(argv: string[], io: RulesIo): Promise<number> {
  const { values, positionals } = parse(argv);
  const [command, ...args] = positionals;
  if (values.help || command === 'help') {
    io.stdout(HELP);
    return 0;
  }
  if (!command) throw usageError('which rules command? list, add, rm, export, import, test or policy');
  const allowed = FLAGS_FOR[command];
  if (!allowed) throw usageError(`unknown rules command "${command}" (known: list, add, rm, export, import, test, policy)`);
  const fleet = values.nats !== undefined;
  for (const [flag, value] of Object.entries(values)) {
    if (value === undefined || flag === 'rules' || flag === 'socket' || flag === 'help') continue;
    if (fleet && (flag.startsWith('nats') || flag === 'all' || flag === 'host-name')) continue;
    if (!fleet && (flag.startsWith('nats') || flag === 'all' || flag === 'host-name')) throw usageError(`--${flag} is for fleet rules: add --nats URL`);
    if (!allowed.includes(flag)) throw usageError(`--${flag} does not apply to \`flowtop rules ${command}\``);
  }
  if (command === 'test') {
    expectArgs(args, 0, 'test');
    return rulesTest(values, io);
  }
  if (command === 'policy') {
    expectArgs(args, 0, 'policy');
    return policyCommand(values, io);
  }
  // A bad rule is refused before anything is opened or created.
  const spec = command === 'add' ? buildSpec(values, io) : undefined;
  if (fleet && (values.rules !== undefined || values.socket !== undefined)) throw usageError('--nats is for the fleet\'s rules; --rules and --socket for one host\'s: pick one');
  const target = fleet ? await fleetTarget(values, command) : await openTarget(values, io);
  try {
    switch (command) {
      case 'list':
        expectArgs(args, 0, 'list');
        return await list(target, values, io);
      case 'add':
        expectArgs(args, 0, 'add');
        return await add(target, spec as RuleSpec, io);
      case 'rm':
        expectArgs(args, 1, 'rm ID');
        return await remove(target, args[0] as string, io);
      case 'export':
        if (args.length > 1) throw usageError('export takes at most one FILE');
        return await exportRules(target, args[0], io);
      case 'import':
        expectArgs(args, 1, 'import FILE');
        return await importRules(target, args[0] as string, values, io);
    }
    return 2;
  } finally {
    await target.close();
  }
}

function expectArgs(args: string[], count: number, usage: string): void {
  if (args.length !== count) throw usageError(`usage: flowtop rules ${usage}${args.length > count ? ` (unexpected: ${args.slice(count).join(' ')})` : ''}`);
}

// ---- list ----------------------------------------------------------------------------------------

async function list(target: Target, values: Values, io: RulesIo): Promise<number> {
  const rules = await target.rules();
  if (values.json) {
    io.stdout(`${escapeJsonControls(JSON.stringify(rules, null, 2))}\n`);
    return 0;
  }
  if (rules.length === 0) {
    io.stdout(`no rules (${target.where})\n`);
    return 0;
  }
  const now = io.now();
  const rows = rules.map((r) => [
    r.id,
    describeAction(r) + (r.enabled ? '' : ' (off)'),
    describeIdentity(r.identity),
    describeEndpoint(r.endpoint),
    r.protocol ?? 'any',
    r.direction ?? 'any',
    describeDuration(r.duration, now),
    String(r.hits),
    r.lastHit ? new Date(r.lastHit).toISOString().slice(0, 16).replace('T', ' ') : '-',
    r.note ?? '',
  ].map(singleLine));
  const header = ['ID', 'ACTION', 'PROCESS', 'REMOTE', 'PROTO', 'DIR', 'DURATION', 'HITS', 'LAST HIT', 'NOTE'];
  // Priorities (set by imports) decide before specificity: show them whenever a rule has one.
  if (rules.some((r) => r.priority)) {
    header.splice(2, 0, 'PRIO');
    rules.forEach((r, i) => rows[i]?.splice(2, 0, r.priority ? String(r.priority) : '-'));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  io.stdout(`${rules.length} rule${rules.length === 1 ? '' : 's'} (${target.where})\n${line(header)}\n${rows.map(line).join('\n')}\n`);
  return 0;
}

// ---- add -----------------------------------------------------------------------------------------

function buildSpec(values: Values, io: RulesIo): RuleSpec {
  if (values.allow === values.block) throw usageError('say --allow or --block (one of them)');
  if (values.reject && !values.block) throw usageError('--reject is for --block rules (refuse the connection instead of dropping it)');
  const spec: RuleSpec = { action: values.block ? 'block' : 'allow', duration: { kind: 'always' } };
  if (values.reject) spec.blockMode = 'reject';
  const identity = buildIdentity(values);
  if (identity) spec.identity = identity;
  if (identity?.kind === 'path') io.stderr('note: a path-only rule is weaker: any program placed at that path matches it. Prefer --identity sha256:HEX or --package NAME --path PATH.\n');

  const endpoint: RuleEndpoint = {};
  const remotes = (['host', 'domain', 'address', 'cidr'] as const).filter((k) => values[k] !== undefined);
  if (remotes.length > 1) throw usageError(`give one of --host, --domain, --address, --cidr (got ${remotes.map((r) => `--${r}`).join(' and ')})`);
  if (values.host !== undefined) endpoint.host = values.host;
  if (values.domain !== undefined) endpoint.domain = values.domain.replace(/^\*?\./, '');
  if (values.address !== undefined) endpoint.address = values.address;
  if (values.cidr !== undefined) endpoint.cidr = values.cidr;
  if (values.port !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(values.port);
    const outOfRange = m && [m[1], m[2]].some((n) => n !== undefined && Number(n) > 65535);
    if (!m || outOfRange) throw usageError(`--port ${values.port}: expected a port (443) or a range (8000-8100), from 0 to 65535`);
    if (m[2] !== undefined) endpoint.portRange = [Number(m[1]), Number(m[2])];
    else endpoint.port = Number(m[1]);
  }
  if (Object.keys(endpoint).length > 0) spec.endpoint = endpoint;
  if (values.protocol !== undefined) spec.protocol = values.protocol as RuleSpec['protocol'];
  if (values.direction !== undefined) spec.direction = values.direction as RuleSpec['direction'];
  if (values.until !== undefined) spec.duration = { kind: 'until', until: parseUntil(values.until, io.now()) };
  if (values.note !== undefined) spec.note = values.note;
  if (values.priority !== undefined) {
    if (!/^\d{1,10}$/.test(values.priority)) throw usageError(`--priority ${values.priority}: expected a whole number from 0 to 1000000000`);
    spec.priority = Number(values.priority);
  }

  const checked = parseRuleSpec(spec, 'the rule');
  if (!checked.ok) throw new UsageError(checked.problems.join('\n  '), 'run `flowtop rules --help` for the flags');
  // Without a process or a remote the rule covers every program and every address: only on request.
  if (values.any && (identity || checked.value.endpoint)) {
    const given = [identity ? 'a process' : '', checked.value.endpoint ? 'a remote (host, domain, address, cidr or port)' : ''].filter(Boolean).join(' and ');
    throw usageError(`--any means every process and every remote, and this rule also names ${given}: leave out --any (a rule that names no process covers every process, one that names no remote every remote)`);
  }
  if (!values.any && !identity && !checked.value.endpoint) {
    throw usageError(`this rule names no process and no remote: it would ${checked.value.action} every program's connections to anywhere; add --any if that is what you mean`);
  }
  return checked.value;
}

function buildIdentity(values: Values): RuleIdentity | undefined {
  const label = values.label;
  if (values.identity !== undefined) {
    if (values.package !== undefined || values.path !== undefined) throw usageError('--identity stands alone: do not add --package or --path');
    const text = /^[0-9a-fA-F]{64}$/.test(values.identity) ? `sha256:${values.identity}` : values.identity;
    if (!text.startsWith('sha256:') && !text.startsWith('package:')) {
      throw usageError(`--identity ${values.identity}: expected sha256:HEX or package:NAME:/PATH (as \`flowtop inspect PID\` prints it)`);
    }
    const identity = identityFromKey(text, label);
    if (!identity) throw usageError(`--identity ${values.identity}: expected sha256:HEX or package:NAME:/PATH`);
    return identity;
  }
  if (values.package !== undefined) {
    if (values.path === undefined) throw usageError('--package needs --path: the executable the package vouches for');
    return { kind: 'package', package: values.package, value: values.path, ...(label ? { label } : {}) };
  }
  if (values.path !== undefined) return { kind: 'path', value: values.path, ...(label ? { label } : {}) };
  if (label !== undefined) throw usageError('--label names a process identity: give --identity, --package or --path with it');
  return undefined;
}

/** An ISO time, or a span from now ("30m", "12h", "7d"); must be in the future. */
export function parseUntil(text: string, now: number): number {
  const span = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  const until = span ? now + Number(span[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[span[2] as 's' | 'm' | 'h' | 'd'] : Date.parse(text);
  if (!Number.isFinite(until)) throw usageError(`--until ${text}: expected an ISO time (2026-12-31T18:00Z) or a span from now (30m, 12h, 7d)`);
  if (until <= now) throw usageError(`--until ${text} is in the past (${new Date(until).toISOString()})`);
  return until;
}

async function add(target: Target, spec: RuleSpec, io: RulesIo): Promise<number> {
  const rule = await target.add(spec, io.now());
  io.stdout(`added ${rule.id}: ${describeRule(rule, io.now())} (${target.where})\n`);
  return 0;
}

// ---- rm, export, import --------------------------------------------------------------------------

async function remove(target: Target, id: string, io: RulesIo): Promise<number> {
  const rule = await target.remove(id);
  io.stdout(`removed ${rule.id}: ${describeRule(rule, io.now())} (${target.where})\n`);
  return 0;
}

async function exportRules(target: Target, file: string | undefined, io: RulesIo): Promise<number> {
  const text = serializeRulesDocument(await target.document());
  if (file === undefined || file === '-') {
    io.stdout(text);
    return 0;
  }
  await writeFileAtomic(file, text).catch((error: Error) => {
    throw new UserError(`cannot write ${file}: ${error.message}`);
  });
  io.stderr(`exported ${JSON.parse(text).rules.length} rules to ${file}\n`);
  return 0;
}

async function importRules(target: Target, file: string, values: Values, io: RulesIo): Promise<number> {
  const format = values.format;
  if (format !== undefined && !IMPORT_FORMATS.includes(format as ImportFormat)) {
    throw usageError(`--format ${format}: expected ${IMPORT_FORMATS.join(', ')}`);
  }
  const report = await readImport(file, format as ImportFormat | undefined, io.now());
  const lines: string[] = [];
  for (const note of report.notes) lines.push(`  note: ${singleLine(`${note.source}: ${note.note}`)}`);
  for (const skipped of report.skipped) lines.push(`  skipped: ${singleLine(`${skipped.source}: ${skipped.reason}`)}`);
  if (values['dry-run']) {
    io.stdout(`${report.format} file ${file}: ${report.rules.length} rules would be imported into ${target.where}, ${report.skipped.length} skipped\n`);
    for (const rule of report.rules) io.stdout(`  ${describeRule(rule, io.now())}\n`);
    if (lines.length) io.stdout(`${lines.join('\n')}\n`);
    return 0;
  }
  const { added, duplicates } = report.rules.length > 0 ? await target.import(report) : { added: [], duplicates: 0 };
  io.stdout(`imported ${added.length} rule${added.length === 1 ? '' : 's'} from ${report.format} file ${file} into ${target.where}` +
    `${duplicates ? ` (${duplicates} already present)` : ''}${report.skipped.length ? `, skipped ${report.skipped.length}` : ''}\n`);
  if (lines.length) io.stdout(`${lines.join('\n')}\n`);
  return report.rules.length === 0 && report.skipped.length > 0 ? 1 : 0;
}
