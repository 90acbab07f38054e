// `flowtop agent install [agent flags]` / `flowtop agent uninstall`: the agent as a systemd service.
// Writes the unit (systemd-unit.ts), creates the flowtop group and the rules folder (the service cannot:
// /etc is read-only to it), then enables and starts it where systemd is the init system. Where it is not
// (a container, a chroot), says what was written and that nothing was started.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, unlinkSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { UsageError, UserError } from '../errors.js';
import { ensureGroup } from '../agent/authorize.js';
import { UNIT_MARKER, UNIT_NAME, renderUnit } from '../agent/systemd-unit.js';
import { writeFileAtomic } from '../rules/atomic-file.js';
import { LINUX_SOCKET, explicitSocketPaths } from '../source/paths.js';
import { parseAgentFlags } from './agent.js';
import { expectErrno } from '../errno.js';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

const HELP = `Usage: sudo flowtop agent install [agent flags] [--unit-dir DIR]
       sudo flowtop agent uninstall [--unit-dir DIR]

install    writes ${UNIT_NAME} (hardened: only the capabilities the agent uses, the system read-only
           but for the rules folder), with the agent flags given here (see \`flowtop agent --help\`);
           creates the flowtop group and the rules folder; enables and starts it where systemd runs
uninstall  stops and disables the service where systemd runs, and removes the unit file
--unit-dir DIR   where the unit goes (default ${DEFAULT_UNIT_DIR})
`;

export interface InstallIo {
  out: (text: string) => void;
  /** Whether systemd is the running init system (sd_booted: /run/systemd/system exists). */
  systemdRuns: () => boolean;
  systemctl: (args: string[]) => { ok: boolean; message: string };
}

const defaultIo: InstallIo = {
  out: (t) => void process.stdout.write(t),
  systemdRuns: () => existsSync('/run/systemd/system'),
  systemctl: (args) => {
    const r = spawnSync('systemctl', args, { encoding: 'utf8', timeout: 60_000 });
    return { ok: r.status === 0, message: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
  },
};

/** Splits `--unit-dir DIR` off the agent's own flags. */
function unitDirOf(argv: string[]): { unitDir: string; rest: string[] } {
  const rest: string[] = [];
  let unitDir = DEFAULT_UNIT_DIR;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--unit-dir') {
      const v = argv[++i];
      if (!v) throw new UsageError('agent install: --unit-dir needs a directory');
      unitDir = v;
    } else if (a.startsWith('--unit-dir=')) unitDir = a.slice('--unit-dir='.length);
    else rest.push(a);
  }
  if (!isAbsolute(unitDir)) throw new UsageError(`agent install: --unit-dir must be an absolute path, got "${unitDir}"`);
  return { unitDir, rest };
}

/** The agent flags made absolute: the service does not run in this folder. */
function absoluteAgentArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--socket' || flag === '--rules' || flag === '--cgroup' || flag === '--history') {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`agent install: ${flag} needs a value`);
      out.push(flag, resolve(value));
    } else out.push(a);
  }
  return out;
}

export async function runInstall(argv: string[], io: InstallIo = defaultIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(HELP);
    return 0;
  }
  const { unitDir, rest } = unitDirOf(argv);
  // The service does not inherit this shell's FLOWTOP_SOCKET: a socket chosen by it becomes a flag.
  const named = rest.some((a) => a === '--socket' || a.startsWith('--socket='));
  const fromEnv = named ? undefined : explicitSocketPaths([], process.env, 'linux')[0];
  const agentArgs = absoluteAgentArgs(fromEnv === undefined ? rest : [...rest, '--socket', fromEnv]);
  const flags = parseAgentFlags(agentArgs, {}); // the same checks the agent makes when it starts
  if (flags.status) throw new UsageError('agent install: --status is not a flag for the service');
  if (process.getuid?.() !== 0) throw new UserError('needs root: run sudo flowtop agent install', 'it writes a systemd unit and creates the flowtop group');
  const entry = process.argv[1] ? realpathSync(process.argv[1]) : undefined;
  if (!entry) throw new UserError('cannot tell where flowtop is installed (no script path)');
  let unit: string;
  try {
    unit = renderUnit({
      node: process.execPath,
      entry,
      agentArgs,
      rulesPath: flags.rules,
      socketPath: flags.socket,
      ...(flags.history ? { historyPath: flags.history } : {}),
      written: new Date(),
    });
  } catch (error) {
    throw new UserError(`agent install: ${(error as Error).message}`);
  }
  const group = ensureGroup();
  mkdirSync(resolve(flags.rules, '..'), { recursive: true, mode: 0o755 });
  const path = join(unitDir, UNIT_NAME);
  await writeFileAtomic(path, unit, { mode: 0o644 });
  io.out(`wrote ${path}\n  ExecStart: ${process.execPath} ${entry} agent ${agentArgs.join(' ')}\n`);
  if (group.created) io.out('created the group flowtop (add people with: sudo usermod -aG flowtop USER)\n');
  if (/^ProtectHome=read-only$/m.test(unit)) io.out('note: the agent or its files live under /home or /root, so the service sees those read-only (ProtectHome=read-only)\n');
  if (!io.systemdRuns()) {
    io.out(`systemd is not the init system here (no /run/systemd/system): ${UNIT_NAME} was written but NOT enabled or started.\n  On a machine booted with systemd: sudo systemctl daemon-reload && sudo systemctl enable --now ${UNIT_NAME}\n`);
    return 0;
  }
  if (unitDir !== DEFAULT_UNIT_DIR) {
    io.out(`written outside ${DEFAULT_UNIT_DIR}: not enabled or started (link it with systemctl link ${path})\n`);
    return 0;
  }
  for (const args of [['daemon-reload'], ['enable', '--now', UNIT_NAME]]) {
    const r = io.systemctl(args);
    if (!r.ok) throw new UserError(`systemctl ${args.join(' ')} failed: ${r.message}`, `see: journalctl -u ${UNIT_NAME}`);
  }
  io.out(`enabled and started ${UNIT_NAME} (status: systemctl status ${UNIT_NAME}; flowtop agent --status${flags.socket === LINUX_SOCKET ? '' : ` --socket ${flags.socket}`})\n`);
  return 0;
}

export async function runUninstall(argv: string[], io: InstallIo = defaultIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(HELP);
    return 0;
  }
  const { unitDir, rest } = unitDirOf(argv);
  if (rest.length > 0) throw new UsageError(`agent uninstall takes only --unit-dir, got ${rest.join(' ')}`);
  if (process.getuid?.() !== 0) throw new UserError('needs root: run sudo flowtop agent uninstall');
  const path = join(unitDir, UNIT_NAME);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    expectErrno(error, ['ENOENT']);
    io.out(`nothing to uninstall: no ${path}\n`);
    return 0;
  }
  if (!text.startsWith(UNIT_MARKER)) throw new UserError(`${path} was not written by flowtop agent install: left alone`, 'remove it yourself if it is yours to remove');
  const managed = io.systemdRuns() && unitDir === DEFAULT_UNIT_DIR;
  if (managed) {
    const r = io.systemctl(['disable', '--now', UNIT_NAME]);
    if (!r.ok) throw new UserError(`systemctl disable --now ${UNIT_NAME} failed: ${r.message}`, 'the unit file was left in place');
  }
  unlinkSync(path);
  if (managed) io.systemctl(['daemon-reload']);
  io.out(`removed ${path}${managed ? ` (stopped and disabled ${UNIT_NAME})` : '; systemd is not running here, so nothing was stopped'}\n`);
  return 0;
}
