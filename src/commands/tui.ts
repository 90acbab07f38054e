// `flowtop` (the default command): the live, full-screen flow table.
import { UserError, UsageError } from '../errors.js';
import { parseFlags } from './flags.js';
import { wantAscii } from '../ui/badges.js';
import { openSources } from '../app/setup.js';
import { passwdUserNames } from '../app/users.js';
import { styledStream, wantColor } from '../app/plain-output.js';
import { positiveInt, runList, takeDemoFlag } from './list.js';
import { resolve } from 'node:path';
import { openHistorySource } from '../app/history-source.js';
import { explicitSocketPaths } from '../source/paths.js';
import { FLEET_FLAG_OPTIONS, FLEET_USAGE, fleetOptionsFrom } from '../fleet/client-options.js';

export const TUI_USAGE = `Usage: flowtop [--socket PATH]... [--nats URL [NATS FLAGS]] [--demo [SCENARIO]] [--ascii] [--max-flows N] [--no-bell] [--notify] [--history-db PATH]
       flowtop --once --json | --jsonl
  --socket PATH    extension socket (repeatable; also FLOWTOP_SOCKET). Default: the local agent's
                   socket; if none is running, a passive monitor of this machine (no blocking)
  --demo [NAME]    play a recorded scenario through an in-process demo extension
  --ascii          ASCII badges and marks ([ok] [!!] [x] [..]); automatic with NO_COLOR or a
                   non-UTF-8 locale (everything drawn is then ASCII); NO_COLOR also turns colour off
  --max-flows N    most flows remembered (default 200000); the oldest closed flows leave first
  --no-bell        no terminal bell when a flow starts waiting for a verdict (m toggles it in the app)
  --notify         also send an OSC 9 desktop notification for it (iTerm2, kitty, WezTerm, Windows Terminal)
  --no-history     the passive monitor records nothing (default: into $XDG_STATE_HOME/flowtop/history.db)
  --history-db PATH  the history the history view (key 4) shows and whose events ring the bell
                   (default: the agent's /var/lib/flowtop/history.db with the agent, your own
                   $XDG_STATE_HOME/flowtop/history.db with the passive monitor; as flowtop history --db)
  --once --json    print one snapshot as JSON and exit; --jsonl streams flow changes
${FLEET_USAGE}Keys: press ? in the app.
`;

export async function run(argv: string[]): Promise<number> {
  const { argv: rest, demo } = takeDemoFlag(argv);
  const { values, positionals } = parseFlags('', {
    args: rest,
    options: {
      socket: { type: 'string', multiple: true },
      ...FLEET_FLAG_OPTIONS,
      ascii: { type: 'boolean' },
      'no-bell': { type: 'boolean' },
      notify: { type: 'boolean' },
      'history-db': { type: 'string' },
      'no-history': { type: 'boolean' },
      'max-flows': { type: 'string' },
      once: { type: 'boolean' },
      json: { type: 'boolean' },
      jsonl: { type: 'boolean' },
      wait: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(TUI_USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unknown command ${JSON.stringify(positionals[0])}`);
  const maxFlows = positiveInt('--max-flows', values['max-flows'], 200_000);
  const sockets = values.socket ?? [];
  const fleet = fleetOptionsFrom(values);
  if (values.once && !values.json) throw new UsageError('--once needs --json (one snapshot as JSON)');
  if (values.json || values.jsonl) {
    if (values.json && values.jsonl) throw new UsageError('choose one of --json and --jsonl');
    return runList({ mode: values.jsonl ? 'jsonl' : 'json', sockets, demo, ...(fleet ? { fleet } : {}), waitMs: positiveInt('--wait', values.wait, 1500), maxFlows });
  }
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new UserError('flowtop needs a terminal on stdin and stdout', 'for scripts and pipes use `flowtop --once --json` (one snapshot) or `flowtop --jsonl` (a stream)');
  }
  // React's production build: the development build re-checks every render and is several times
  // slower. Set before Ink and React load (run.js is imported below for that reason).
  process.env.NODE_ENV ??= 'production';
  const { runInteractive } = await import('../app/run.js');
  const opened = await openSources({ sockets, demo, history: !values['no-history'] && !fleet, ...(fleet ? { fleet } : {}) }, process.env);
  const ascii = wantAscii(process.env, values.ascii ?? false);
  if (values['history-db'] === '') throw new UsageError('--history-db needs a file', 'run `flowtop --help` for the usage');
  // Against the agent (or another extension socket), the agent's history; with the passive monitor,
  // the user's own; the demo alone has none.
  const local = explicitSocketPaths(sockets, process.env).length > 0;
  const flows = opened.sources.some((s) => s.id === 'monitor') ? 'monitor' : local || (demo === undefined && !fleet) ? 'agent' : fleet && demo === undefined ? 'fleet' : 'demo';
  const history = openHistorySource({ flows, ...(values['history-db'] !== undefined ? { path: resolve(values['history-db']) } : {}) }, process.env);
  const style = { color: wantColor(process.env), ascii };
  try {
    return await runInteractive(
      {
        sources: opened.merged,
        attributorFor: opened.attributorFor,
        userName: passwdUserNames(),
        clock: { now: () => Date.now() },
        stdin: process.stdin,
        stdout: styledStream(process.stdout, style),
        stderr: styledStream(process.stderr, style),
      },
      { ascii, table: { maxFlows }, ...(opened.banner ? { banner: opened.banner } : {}), bell: !values['no-bell'], notify: values.notify ?? false, history },
    );
  } finally {
    history.close();
    await opened.close();
    if (opened.note) process.stderr.write(`flowtop: ${opened.note}\n`);
    for (const line of opened.historyLog) process.stderr.write(`flowtop: ${line}\n`);
  }
}
