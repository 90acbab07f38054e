// flowtop demo [--scenario NAME|PATH] [--socket PATH] [--speed N] [--loop] [--list]
// Serves a recorded scenario as a protocol v1 extension until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { parseFlags } from './flags.js';
import { MAX_SPEED, startDemoExtension } from '../demo/extension.js';
import { DEFAULT_SCENARIO, listScenarioNames, resolveScenarioPath } from '../demo/scenario-files.js';
import { formatProblem, parseScenario } from '../demo/scenario.js';

const HELP = `Usage:
  flowtop demo [--scenario NAME|PATH] [--socket PATH] [--speed N] [--loop]
  flowtop demo --list

Serves a recorded scenario as a flowtop extension (protocol v1) on a Unix socket, honouring the
verdicts and rules clients send back, until interrupted (Ctrl-C). Connect with
\`flowtop --socket PATH\`, or run \`flowtop --demo\` to start one inside the TUI.

  --scenario NAME|PATH  a shipped scenario (see --list; default "${DEFAULT_SCENARIO}") or an .ndjson file
  --socket PATH         where to listen (default: a new path in the temporary directory)
  --speed N             play N times faster than recorded, deadlines too (0 < N ≤ ${MAX_SPEED}; default 1)
  --loop                start over after the last event (flow ids get a "#pass" suffix)
  --list                list the shipped scenarios and exit
Format of a scenario: demo/scenarios/README.md
`;

export interface DemoIo {
  write(text: string): void;
  warn(text: string): void;
  /** Resolves when the demo should stop; default: the first SIGINT or SIGTERM. */
  stopped?: Promise<unknown>;
}

const processIo: DemoIo = {
  write: (text) => void process.stdout.write(text),
  warn: (text) => void process.stderr.write(text),
};

export async function run(argv: string[], io: DemoIo = processIo): Promise<number> {
  const parsed = parseFlags('demo', {
    args: argv,
    allowPositionals: true,
    options: {
      scenario: { type: 'string' },
      socket: { type: 'string' },
      speed: { type: 'string' },
      loop: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    io.write(HELP);
    return 0;
  }
  if (positionals.length > 1 || (positionals.length === 1 && values.scenario !== undefined)) {
    throw new UsageError(`demo: one scenario at a time (got ${[values.scenario, ...positionals].filter(Boolean).join(', ')})`, 'run `flowtop demo --help` for the usage');
  }
  if (values.list) {
    io.write(listing());
    return 0;
  }
  const speed = values.speed === undefined ? 1 : parseSpeed(values.speed);
  if (values.socket !== undefined && values.socket.trim() === '') throw new UsageError('demo: --socket needs a path');
  const scenario = values.scenario ?? positionals[0] ?? DEFAULT_SCENARIO;

  const demo = await startDemoExtension({ scenario, speed, loop: values.loop, ...(values.socket !== undefined ? { socketPath: values.socket } : {}) });
  for (const problem of demo.problems) io.warn(`flowtop demo: skipped ${formatProblem(problem)}\n`);
  const s = demo.scenario;
  const flows = s.events.filter((e) => e.kind === 'flow').length;
  io.write(
    `flowtop demo: listening on ${demo.socketPath}\n` +
      `  scenario "${s.name}": ${flows} flows over ${Math.round(s.lengthMs / 1000)} s, at ${speed}× speed${values.loop ? ', looping' : ''}\n` +
      `  connect with: flowtop --socket ${demo.socketPath}\n` +
      `  stop with Ctrl-C\n`,
  );
  await (io.stopped ?? untilSignalled());
  await demo.close();
  io.write('flowtop demo: stopped\n');
  return 0;
}

function parseSpeed(text: string): number {
  const speed = Number(text);
  if (text.trim() === '' || !Number.isFinite(speed) || speed <= 0 || speed > MAX_SPEED) {
    throw new UsageError(`demo: --speed must be a number above 0 and at most ${MAX_SPEED} (got "${text}")`, 'for example: --speed 10 plays ten times faster');
  }
  return speed;
}

function listing(): string {
  const names = listScenarioNames();
  if (names.length === 0) return 'no shipped scenarios found (demo/scenarios is missing from this installation)\n';
  const width = Math.max(...names.map((n) => n.length));
  return names
    .map((name) => {
      const path = resolveScenarioPath(name);
      const { scenario, problems } = parseScenario(readFileSync(path, 'utf8'), path);
      const note = problems.length > 0 ? ` (${problems.length} bad lines)` : '';
      return `${name.padEnd(width)}  ${scenario.description}${note}\n`;
    })
    .join('');
}

function untilSignalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
