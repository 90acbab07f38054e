// flowtop rules list|add|rm|export|import — the rules from the command line. When an agent keeps rules
// on its socket, changes go through it (the running agent stays the only writer of its file);
// otherwise the rules file is edited through RuleStore (atomic writes).
import { UsageError, UserError } from '../errors.js';
import type { Rule, RuleIdentity, RuleEndpoint, RuleSpec } from '../protocol/messages.js';
import { parseFlags } from './flags.js';
import { writeFileAtomic } from '../rules/atomic-file.js';
import { serializeRulesDocument, RULES_FILE_VERSION, type RulesDocument } from '../rules/document.js';
import { IMPORT_FORMATS, readImport, type ImportFormat, type ImportReport } from '../rules/import/index.js';
import {
  describeAction, describeDuration, describeEndpoint, describeIdentity, describeRule, identityFromKey, ruleContentKey, singleLine,
} from '../rules/model.js';
import { DEFAULT_POLICY, type Policy } from '../rules/policy.js';
import { parseRuleSpec } from '../rules/schema.js';
import { RemoteRules } from '../rules/remote.js';
import { DEFAULT_RULES_PATH, readRulesFile, RuleStore } from '../rules/store.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
import { rulesTest, TEST_FLAGS, TEST_HELP } from './rules-test.js';
import { escapeJsonControls } from '../text/controls.js';

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
Where the rules live:
  --socket PATH   the agent to ask (default ${defaultSocketPath()}, or $FLOWTOP_SOCKET); a running
                  agent is asked first, so it stays the only writer of its rules file
  --rules PATH    edit this rules file directly (default ${DEFAULT_RULES_PATH} when no agent runs)
`;

const RULES_HELP_STEP = 'run `flowtop rules --help` for the usage';

function usageError(message: string): UsageError {
  return new UsageError(message, RULES_HELP_STEP);
}

export interface RulesIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  now: () => number;
  env: NodeJS.ProcessEnv;
}

export async function run(argv: string[], io?: Partial<RulesIo>): Promise<number> {
  return runRules(argv, {
    stdout: io?.stdout ?? ((t) => void process.stdout.write(t)),
    stderr: io?.stderr ?? ((t) => void process.stderr.write(t)),
    now: io?.now ?? Date.now,
    env: io?.env ?? process.env,
  });
}

const OPTIONS = {
  json: { type: 'boolean' },
  any: { type: 'boolean' },
  allow: { type: 'boolean' },
  block: { type: 'boolean' },
  reject: { type: 'boolean' },
  identity: { type: 'string' },
  package: { type: 'string' },
  path: { type: 'string' },
  label: { type: 'string' },
  host: { type: 'string' },
  domain: { type: 'string' },
  address: { type: 'string' },
  cidr: { type: 'string' },
  port: { type: 'string' },
  protocol: { type: 'string' },
  direction: { type: 'string' },
  until: { type: 'string' },
  note: { type: 'string' },
  priority: { type: 'string' },
  format: { type: 'string' },
  'dry-run': { type: 'boolean' },
  default: { type: 'string' },
  'block-mode': { type: 'string' },
  'block-unpackaged': { type: 'string' },
  'allow-packaged': { type: 'string' },
  trust: { type: 'string' },
  rules: { type: 'string' },
  socket: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(argv: string[]) {
  return parseFlags('rules', { args: argv, allowPositionals: true, options: OPTIONS });
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
  for (const [flag, value] of Object.entries(values)) {
    if (value === undefined || flag === 'rules' || flag === 'socket' || flag === 'help') continue;
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
  const target = await openTarget(values, io);
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

// ---- Where the rules live ----------------------------------------------------------------------

interface Target {
  /** For people: "the agent at /run/…" or "/etc/flowtop/rules.json". */
  where: string;
  rules(): Promise<readonly Rule[]>;
  /** `now` stamps `created` when the file is edited here; an agent uses its own clock. */
  add(spec: RuleSpec, now: number): Promise<Rule>;
  remove(id: string): Promise<Rule>;
  document(): Promise<RulesDocument>;
  import(report: ImportReport): Promise<{ added: Rule[]; duplicates: number }>;
  close(): Promise<void>;
}

async function openTarget(values: Values, io: RulesIo): Promise<Target> {
  const sockets = explicitSocketPaths(values.socket ?? [], io.env);
  if (sockets.length > 1) throw usageError('give one --socket for rules');
  const socket = sockets[0];
  // --rules names a file to edit; only a --socket flag (not $FLOWTOP_SOCKET) overrides it.
  if (values.rules !== undefined && (values.socket ?? []).length === 0) return fileTarget(values.rules);
  const path = socket ?? defaultSocketPath();
  const outcome = await RemoteRules.connect(path);
  if (outcome.kind === 'connected') return agentTarget(outcome.client, values.rules ?? DEFAULT_RULES_PATH);
  if (socket !== undefined) {
    const why = outcome.kind === 'absent' ? `no agent listens there (${outcome.why})` : `the extension there (${outcome.hello.extension.name}) does not keep rules`;
    throw new UserError(`cannot manage rules through ${socket}: ${why}`, 'start the agent (`sudo flowtop agent`), or pass --rules PATH to edit a rules file');
  }
  return fileTarget(values.rules ?? DEFAULT_RULES_PATH);
}

async function fileTarget(path: string): Promise<Target> {
  let store: RuleStore | undefined;
  const open = async (): Promise<RuleStore> => (store ??= await RuleStore.open(path));
  return {
    where: path,
    rules: async () => (await open()).rules(),
    add: async (spec, now) => (await open()).add(spec, now),
    remove: async (id) => {
      const removed = await (await open()).remove(id);
      if (!removed) throw new UserError(`no rule with id ${id} in ${path}`, 'see the ids with `flowtop rules list`');
      return removed;
    },
    document: async () => (await open()).document(),
    import: async (report) => {
      const outcomes = await (await open()).importRules(report.rules);
      return { added: outcomes.filter((o) => o.result === 'added').map((o) => o.rule), duplicates: outcomes.filter((o) => o.result === 'duplicate').length };
    },
    close: async () => store?.close(),
  };
}

function agentTarget(client: RemoteRules, rulesPath: string): Target {
  return {
    where: `the agent at ${client.path}`,
    rules: () => client.list(),
    add: (spec) => client.add(spec),
    remove: (id) => client.remove(id),
    document: async () => {
      // The policy the agent applies, as its hello says; an extension that does not say: the file's.
      const mode = client.hello.mode;
      const policy = mode?.defaultAction !== undefined && mode.blockMode !== undefined && mode.blockUnpackaged !== undefined && mode.allowPackaged !== undefined
        ? { defaultAction: mode.defaultAction, blockMode: mode.blockMode, blockUnpackaged: mode.blockUnpackaged, allowPackaged: mode.allowPackaged }
        : await readRulesFile(rulesPath).then((r) => r.document.policy, () => ({ ...DEFAULT_POLICY }));
      return { version: RULES_FILE_VERSION, policy, rules: await client.list() };
    },
    import: async (report) => {
      const present = new Set((await client.list()).map(ruleContentKey));
      const added: Rule[] = [];
      let duplicates = 0;
      for (const rule of report.rules) {
        if (present.has(ruleContentKey(rule))) {
          duplicates++;
          continue;
        }
        const { id: _id, created: _created, hits: _hits, lastHit: _lastHit, ...spec } = rule;
        added.push(await client.add(spec));
        present.add(ruleContentKey(rule));
      }
      return { added, duplicates };
    },
    close: async () => client.close(),
  };
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
    if (!m) throw usageError(`--port ${values.port}: expected a port (443) or a range (8000-8100)`);
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
  if (values.any && (identity || checked.value.endpoint)) throw usageError('--any means every process and every remote: leave out the process and remote flags, or --any');
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


// ---- policy --------------------------------------------------------------------------------------

function onOff(flag: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === 'false' || value === 'no') return false;
  throw usageError(`--${flag} ${value}: expected on or off`);
}

/** Shows or sets the policy switches. They live in the rules file, which a running agent owns (it
 *  would write its own copy over a change made beside it), so setting them needs the agent stopped. */
async function policyCommand(values: Values, io: RulesIo): Promise<number> {
  const next: Partial<Policy> = {};
  if (values.default !== undefined) {
    if (values.default !== 'allow' && values.default !== 'block') throw usageError(`--default ${values.default}: expected allow or block`);
    next.defaultAction = values.default;
  }
  if (values['block-mode'] !== undefined) {
    if (values['block-mode'] !== 'drop' && values['block-mode'] !== 'reject') throw usageError(`--block-mode ${values['block-mode']}: expected drop or reject`);
    next.blockMode = values['block-mode'];
  }
  const blockUnpackaged = onOff('block-unpackaged', values['block-unpackaged']);
  if (blockUnpackaged !== undefined) next.blockUnpackaged = blockUnpackaged;
  const allowPackaged = onOff('allow-packaged', values['allow-packaged']);
  if (allowPackaged !== undefined) next.allowPackaged = allowPackaged;

  const path = values.rules ?? DEFAULT_RULES_PATH;
  const changing = Object.keys(next).length > 0;
  if (!changing && values.rules === undefined) {
    const shown = await showAgentPolicy(values, io);
    if (shown !== undefined) return shown;
  }
  // As for the other commands, --rules names a file to edit directly; without it, ask the agent first.
  if (changing && values.rules === undefined) {
    const sockets = explicitSocketPaths(values.socket ?? [], io.env);
    const outcome = await RemoteRules.connect(sockets[0] ?? defaultSocketPath());
    if (outcome.kind === 'connected') {
      outcome.client.close();
      throw new UserError(`an agent is running (${outcome.client.path}); it owns the rules file while it runs`, 'stop the agent, change the policy, then start it again');
    }
  }
  const store = await RuleStore.open(path);
  try {
    if (changing) await store.setPolicy({ ...store.policy(), ...next });
    const policy = store.policy();
    if (values.json) {
      io.stdout(`${JSON.stringify(policy, null, 2)}\n`);
      return 0;
    }
    io.stdout(`${changing ? 'policy set' : 'policy'} (${path}):\n` +
      `  default action     ${policy.defaultAction}   when no rule matches and nobody answers in time\n` +
      `  block mode         ${policy.blockMode}\n` +
      `  block unpackaged   ${policy.blockUnpackaged ? 'on ' : 'off'}     code no package or signature vouches for, and code whose identity cannot be verified\n` +
      `  allow packaged     ${policy.allowPackaged ? 'on ' : 'off'}     code a package verifies (Linux) or Apple signs (macOS)\n`);
    return 0;
  } finally {
    await store.close();
  }
}

/** The policy a running agent applies (its flags and its rules file combined), as its hello says,
 *  with where each part comes from. undefined when no agent answers on the default socket (the file
 *  is shown instead); an explicit --socket with nothing there is an error. */
async function showAgentPolicy(values: Values, io: RulesIo): Promise<number | undefined> {
  const sockets = explicitSocketPaths(values.socket ?? [], io.env);
  if (sockets.length > 1) throw usageError('give one --socket for rules');
  const explicit = (values.socket ?? []).length > 0;
  const path = sockets[0] ?? defaultSocketPath();
  const outcome = await RemoteRules.connect(path);
  if (outcome.kind === 'absent') {
    if (!explicit) return undefined;
    throw new UserError(`cannot ask ${path} for its policy: no agent listens there (${outcome.why})`, 'start the agent (`sudo flowtop agent`), or pass --rules PATH to read a rules file');
  }
  const hello = outcome.kind === 'connected' ? outcome.client.hello : outcome.hello;
  if (outcome.kind === 'connected') outcome.client.close();
  const mode = hello.mode ?? {};
  if (mode.defaultAction === undefined || mode.blockMode === undefined || mode.blockUnpackaged === undefined || mode.allowPackaged === undefined) {
    if (!explicit) return undefined;
    throw new UserError(`${hello.extension.name} at ${path} does not say which policy it applies`, 'pass --rules PATH to read a rules file');
  }
  const from = mode.policyFrom ?? {};
  const policy: Policy = { defaultAction: mode.defaultAction, blockMode: mode.blockMode, blockUnpackaged: mode.blockUnpackaged, allowPackaged: mode.allowPackaged };
  if (values.json) {
    io.stdout(`${JSON.stringify({ ...policy, from, appliedBy: path }, null, 2)}\n`);
    return 0;
  }
  const onOffText = (on: boolean): string => (on ? 'on ' : 'off');
  io.stdout(`policy applied by ${hello.extension.name} at ${path}:\n` +
    `  default action     ${policy.defaultAction.padEnd(6)}  ${from.defaultAction ?? ''}\n` +
    `  block mode         ${policy.blockMode.padEnd(6)}  ${from.blockMode ?? ''}\n` +
    `  block unpackaged   ${onOffText(policy.blockUnpackaged).padEnd(6)}  ${from.blockUnpackaged ?? ''}\n` +
    `  allow packaged     ${onOffText(policy.allowPackaged).padEnd(6)}  ${from.allowPackaged ?? ''}\n` +
    `(the agent reads its rules file when it starts: to change the file's part, stop it, run \`flowtop rules policy --rules FILE ...\`, start it)\n`);
  return 0;
}
