// `flowtop agent`: the Linux extension (root). Holds the first packet of every new connection in
// NFQUEUE, finds its process exactly, decides by rule or asks the connected clients, and serves
// protocol v1 on a Unix socket. `--status` reports a running agent.
import { availableParallelism } from 'node:os';
import { UsageError, UserError } from '../errors.js';
import { parseFlags } from './flags.js';
import type { Action, BlockMode } from '../protocol/messages.js';
import { listenForStop } from '../agent/shutdown.js';
import { resolve } from 'node:path';
import { AGENT_HISTORY_PATH } from '../history/paths.js';
import type { RunningHistory } from '../history/index.js';
import { HistoryState } from '../history/status.js';
import { describeHistory } from './agent-history-status.js';
import type { AttributionBackend } from '../attribution/types.js';
import { LINUX_SOCKET, SOCKET_ENV, explicitSocketPaths } from '../source/paths.js';
import { hostname } from 'node:os';
import { replaceControls } from '../text/controls.js';
import { NATS_FLAGS_HELP, NATS_FLAG_OPTIONS, natsLinkConfig, parseMaxAge, type NatsLinkConfig } from '../fleet/connect-options.js';
import { HOST_NAME_PATTERN, hostNameFrom } from '../fleet/wire.js';

const HELP = `Usage: sudo flowtop agent [options]
       sudo flowtop agent install [options]   start it at boot (systemd); \`agent install --help\`
       sudo flowtop agent uninstall

Holds each new connection until a rule or a client decides it (Linux, root).

  --socket PATH        extension socket (default $${SOCKET_ENV}, else ${LINUX_SOCKET}; mode 0660 root:flowtop)
  --rules PATH         rules file (default /etc/flowtop/rules.json)
  --default allow|block  action when nobody answers in time (default allow; the stricter of this
                       and the rules file's policy.defaultAction applies)
  --timeout DURATION   how long a flow waits for an answer: 30s, 500ms, 2m (default 30s)
  --block-mode drop|reject  drop: the program times out; reject: its socket is destroyed at once (default reject)
  --fail-closed        while no agent runs (crash, SIGKILL), new connections are refused
  --queue-bypass       while no agent runs, new connections pass unjudged (default: fail-open)
  --queue-num N        NFQUEUE number (default 7231)
  --workers N          threads judging packets, one NFQUEUE each (--queue-num and up), spread by CPU
                       (default: one per CPU, at most 4; 1..16)
  --inbound            also hold new inbound connections to local listeners
  --cgroup PATH        attach the socket recorder to this cgroup v2 directory (default: the cgroup2 root)
  --no-bpf             do not load the BPF recorder; find owners by scanning /proc
  --udp-idle DURATION  a UDP flow ends after this long with no activity seen (default 30s)
  --history PATH       record every flow into this SQLite file (default /var/lib/flowtop/history.db,
                       readable by group flowtop; read it with \`flowtop history\`)
  --no-history         record nothing
  --status             print the state of the running agent (the one on --socket) and exit

Fleet (docs/fleet.md): publish every event to NATS, answer requests from there, enforce fleet rules.
${NATS_FLAGS_HELP}  --host-name NAME     this host's name in subjects and keys (default: the machine's name)
  --nats-max-age DUR   how long the events stream keeps events: 30m, 24h, 7d (default 24h)
`;

/** Queue threads when --workers is not given: one per CPU (the firewall spreads packets by CPU), at most 4. */
const DEFAULT_WORKERS = Math.max(1, Math.min(availableParallelism(), 4));

export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

export interface AgentFlags {
  socket: string;
  rules: string;
  defaultAction: Action;
  timeoutMs: number;
  blockMode: BlockMode;
  failOpen: boolean;
  queueNum: number;
  workers: number;
  inbound: boolean;
  cgroup?: string;
  noBpf: boolean;
  udpIdleMs: number;
  /** The history file; undefined with --no-history. */
  history?: string;
  status: boolean;
  help: boolean;
  /** With --nats: how to reach the fleet, this host's name there, and the stream's maximum age. */
  fleet?: { config: NatsLinkConfig; host: string; maxAgeMs: number };
}

/** The agent's flags. `env` supplies FLOWTOP_SOCKET when --socket is absent, as for every client, so
 *  `FLOWTOP_SOCKET=… flowtop agent` and `FLOWTOP_SOCKET=… flowtop` meet on the same socket. */
export function parseAgentFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentFlags {
  const parsed = parseFlags('agent', {
    args: argv,
    options: {
      socket: { type: 'string' },
      rules: { type: 'string' },
      default: { type: 'string' },
      timeout: { type: 'string' },
      'block-mode': { type: 'string' },
      'fail-closed': { type: 'boolean' },
      'queue-bypass': { type: 'boolean' },
      'queue-num': { type: 'string' },
      workers: { type: 'string' },
      inbound: { type: 'boolean' },
      cgroup: { type: 'string' },
      'no-bpf': { type: 'boolean' },
      'udp-idle': { type: 'string' },
      history: { type: 'string' },
      'no-history': { type: 'boolean' },
      status: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...NATS_FLAG_OPTIONS,
      'host-name': { type: 'string' },
      'nats-max-age': { type: 'string' },
    },
    allowPositionals: false,
  }).values;
  const nats = natsLinkConfig('agent', parsed);
  if (!nats && (parsed['host-name'] !== undefined || parsed['nats-max-age'] !== undefined)) {
    throw new UsageError(`agent: --${parsed['host-name'] !== undefined ? 'host-name' : 'nats-max-age'} needs --nats URL`);
  }
  const hostName = parsed['host-name'] ?? hostNameFrom(hostname());
  if (nats && !HOST_NAME_PATTERN.test(hostName)) throw new UsageError(`agent: --host-name "${hostName}": use 1–64 letters, digits, "_" or "-" (one NATS subject token)`);
  const fleet = nats ? { config: nats, host: hostName, maxAgeMs: parseMaxAge('agent', parsed['nats-max-age'] ?? '24h') } : undefined;
  const def = parsed.default ?? 'allow';
  if (def !== 'allow' && def !== 'block') throw new UsageError(`agent: --default must be allow or block, got "${def}"`);
  const blockMode = parsed['block-mode'] ?? 'reject';
  if (blockMode !== 'drop' && blockMode !== 'reject') throw new UsageError(`agent: --block-mode must be drop or reject, got "${blockMode}"`);
  const timeoutMs = parseDuration(parsed.timeout ?? '30s');
  if (timeoutMs === undefined || timeoutMs < 100 || timeoutMs > 3_600_000) {
    throw new UsageError(`agent: --timeout must be a duration between 100ms and 60m (e.g. 30s), got "${parsed.timeout}"`);
  }
  const udpIdleMs = parseDuration(parsed['udp-idle'] ?? '30s');
  if (udpIdleMs === undefined || udpIdleMs < 100 || udpIdleMs > 86_400_000) {
    throw new UsageError(`agent: --udp-idle must be a duration between 100ms and 24h (e.g. 30s), got "${parsed['udp-idle']}"`);
  }
  const queueNum = Number(parsed['queue-num'] ?? '7231');
  if (!Number.isInteger(queueNum) || queueNum < 0 || queueNum > 65535) {
    throw new UsageError(`agent: --queue-num must be an integer 0..65535, got "${parsed['queue-num']}"`);
  }
  const workers = Number(parsed.workers ?? String(DEFAULT_WORKERS));
  if (!Number.isInteger(workers) || workers < 1 || workers > 16) {
    throw new UsageError(`agent: --workers must be an integer 1..16, got "${parsed.workers}"`);
  }
  if (queueNum + workers > 65535) {
    throw new UsageError(`agent: --queue-num ${queueNum} leaves no room for ${workers} worker queues and the DNS queue (at most 65535)`);
  }
  if (parsed.history !== undefined && parsed['no-history']) {
    throw new UsageError('agent: --history and --no-history contradict each other: pick one');
  }
  if (parsed.history !== undefined && (parsed.history === '' || parsed.history.endsWith('/'))) {
    throw new UsageError(`agent: --history must name a file, got "${parsed.history}"`);
  }
  if (parsed['fail-closed'] && parsed['queue-bypass']) {
    throw new UsageError('agent: --fail-closed and --queue-bypass contradict each other: pick one');
  }
  return {
    socket: explicitSocketPaths(parsed.socket === undefined ? [] : [parsed.socket], env, 'linux')[0] ?? LINUX_SOCKET,
    rules: parsed.rules ?? '/etc/flowtop/rules.json',
    defaultAction: def,
    timeoutMs,
    blockMode,
    failOpen: !parsed['fail-closed'],
    queueNum,
    workers,
    inbound: parsed.inbound ?? false,
    ...(parsed.cgroup ? { cgroup: parsed.cgroup } : {}),
    noBpf: parsed['no-bpf'] ?? false,
    udpIdleMs,
    ...(parsed['no-history'] ? {} : { history: resolve(parsed.history ?? AGENT_HISTORY_PATH) }),
    status: parsed.status ?? false,
    help: parsed.help ?? false,
    ...(fleet ? { fleet } : {}),
  };
}

async function printStatus(socket: string): Promise<number> {
  const { readStatus, statusFileFor } = await import('../agent/agent.js');
  const s = readStatus(statusFileFor(socket));
  if (!s) {
    process.stdout.write(`flowtop agent: not running (no ${statusFileFor(socket)})\n`);
    return 3;
  }
  if (typeof s === 'string') {
    process.stdout.write(`flowtop agent: unknown (${s})\n`);
    return 3;
  }
  let alive = true;
  try {
    process.kill(s.pid, 0);
  } catch (error) {
    alive = (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const c = s.counters;
  const lines = [
    `flowtop agent: ${alive ? 'running' : 'NOT running (stale status file)'} (pid ${s.pid}, since ${new Date(s.started).toISOString()})`,
    `  socket        ${s.socket}`,
    `  interception  NFQUEUE ${s.queueNum} via ${s.firewall}, ${s.failOpen ? 'fail-open (--queue-bypass)' : 'fail-closed'}`,
    `  attribution   ${s.attribution}${s.attributionDetail ? ` — ${s.attributionDetail}` : ''}`,
    `  default       ${s.defaultAction} after ${s.timeoutMs} ms; block mode ${s.blockMode}`,
    `  packets       queued ${c.queued}; decided by rule ${c.decidedByRule} (${c.decidedByIdentityInWorker ?? 0} by a known code identity in the queue threads), user ${c.decidedByUser}, default ${c.decidedByDefault}; failed to judge ${c.judgeErrors ?? 0} (given the default); pending flows ${c.pending}`,
    `  owners        found ${c.ownerFound}, not found ${c.ownerMissing}; verdict send errors ${c.verdictErrors}; sockets the kernel would not destroy ${c.destroyErrors ?? 0}`,
    `  clients       ${s.clients}`,
    `  hand-over     ${c.decidedHandedOver ?? 0} flows decided by rule handed to the main thread in ${c.decidedBatches ?? 0} batches`,
    ...(s.history ? [`  history       ${describeHistory(s.history, Date.now())}`] : []),
  ];
  if (s.fleet) {
    const f = s.fleet;
    lines.push(
      `  NATS          ${f.state}${f.server ? ` to ${f.server}` : ''} as host ${f.host} (${f.servers.join(', ')})${f.problem ? ` — ${replaceControls(f.problem)}` : ''}`,
      `  NATS events   published ${f.published}; backlog ${f.backlogEvents} (${f.backlogBytes} bytes); dropped ${f.dropped} (backlog full); own connections let through ${c.ownConnections ?? 0}`,
      `  NATS fleet    requests answered ${f.requests}; fleet rules in force ${f.fleetRules ?? 0}${f.announced ? `; announced ${Math.round((Date.now() - f.announced) / 1000)} s ago` : ''}`,
    );
    if (f.restarts || f.restartAt) {
      const ago = (ms: number): string => `${Math.max(Math.round((Date.now() - ms) / 1000), 0)} s ago`;
      lines.push(
        `  NATS thread   restarted ${f.restarts ?? 0} time${f.restarts === 1 ? '' : 's'}${f.restartAt ? `, next start in ${Math.max(Math.ceil((f.restartAt - Date.now()) / 1000), 0)} s` : ''}`
          + `${f.lastFailure ? `; last failure ${f.lastFailureAt ? ago(f.lastFailureAt) : ''}: ${replaceControls(f.lastFailure)}` : ''}; events dropped while none ran ${f.lost ?? 0}`,
      );
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
  return alive ? 0 : 3;
}

/** The agent's recorder (into a file group flowtop may read), or why it could not start. */
async function startAgentHistory(path: string, attribution: AttributionBackend, log: (line: string) => void): Promise<RunningHistory | { off: string }> {
  const { prepareHistoryFile } = await import('../history/paths.js');
  const { ensureGroup } = await import('../agent/authorize.js');
  const { startHistory, RecordingBusy } = await import('../history/index.js');
  try {
    const gid = ensureGroup().gid;
    // A folder made for it is 0750 root:flowtop, the file 0640 root:flowtop (SQLite gives its -wal
    // and -shm the same): group flowtop reads the history, only root writes it.
    prepareHistoryFile(path, { fileMode: 0o640, dirMode: 0o750, gid, asRoot: true });
  } catch (error) {
    log(`history: not recording: ${(error as Error).message}`);
    return { off: (error as Error).message };
  }
  try {
    return startHistory({
      path,
      program: 'flowtop agent',
      resolve: (tokens) => attribution.resolve(tokens),
      log,
      onEvent: (e) => log(`history: ${e.kind}: ${e.detail}`),
    });
  } catch (error) {
    // Whatever stops the recording from starting (another recorder, a lock file it cannot make),
    // the agent judges on without it.
    const why = error instanceof RecordingBusy ? `${error.message}: give this agent its own --history PATH, or --no-history` : (error as Error).message;
    log(`history: not recording: ${why}`);
    return { off: why };
  }
}

/** With --nats: the fleet rules (the local copy first), the link thread, and what ties them to the agent. */
async function startFleet(
  options: NonNullable<AgentFlags['fleet']>, rulesPath: string, store: import('../rules/store.js').RuleStore, log: (line: string) => void,
): Promise<import('../fleet/agent-fleet.js').AgentFleet> {
  const { AgentFleet } = await import('../fleet/agent-fleet.js');
  return AgentFleet.start({ ...options, rulesPath, store, log });
}

/** Without --nats a copy of fleet rules left beside the rules file is not enforced: said, not hidden. */
async function sayIgnoredFleetCopy(rulesPath: string, log: (line: string) => void): Promise<void> {
  const { fleetCopyPath } = await import('../fleet/fleet-rules.js');
  const { existsSync } = await import('node:fs');
  const copy = fleetCopyPath(rulesPath);
  if (existsSync(copy)) log(`fleet rules in ${copy} are not enforced without --nats (start with --nats to enforce them, or remove the file)`);
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'install' || argv[0] === 'uninstall') {
    if (process.platform !== 'linux') throw new UserError(`flowtop agent ${argv[0]} is for Linux only`);
    const { runInstall, runUninstall } = await import('./agent-install.js');
    return argv[0] === 'install' ? runInstall(argv.slice(1)) : runUninstall(argv.slice(1));
  }
  const flags = parseAgentFlags(argv);
  if (flags.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (process.platform !== 'linux') throw new UserError('flowtop agent runs on Linux only', 'on macOS the network extension plays this part');
  if (flags.status) return printStatus(flags.socket);
  if (process.getuid?.() !== 0) throw new UserError('needs root: run sudo flowtop agent', 'it installs firewall rules, binds NFQUEUE and loads a BPF program');
  if (flags.cgroup && !flags.noBpf) (await import('../agent/cgroup-directory.js')).requireCgroup2Directory(flags.cgroup);
  // Before anything is touched: a second agent in this network namespace or on this socket is
  // refused, naming the running one; a dead one's locks are already gone (the kernel drops them).
  const { claimAgentInstance } = await import('../agent/instance-lock.js');
  let instance;
  try {
    instance = claimAgentInstance(flags.socket);
  } catch (error) {
    throw new UserError(`agent could not start: ${(error as Error).message}`);
  }
  const { Agent } = await import('../agent/agent.js');
  const { linuxAgentIo } = await import('../agent/linux-io.js');
  const { RuleStore } = await import('../rules/store.js');
  const { storeRuleBook } = await import('../agent/rule-book.js');
  const { createLinuxBackend } = await import('../native/linux/backend.js');
  // Stop signals are caught from here on, before anything is installed: a signal during the start
  // waits for it to finish and then undoes it, instead of killing the process half-way.
  const log = (line: string): void => void process.stderr.write(`flowtop agent: ${line}\n`);
  let hasten = (): void => {};
  // A held Ctrl-C sends dozens a second: the first repeat is said, the rest only hasten the stop.
  let repeats = 0;
  const stop = listenForStop((signal) => {
    if (repeats++ === 0) log(`${signal} received: already stopping, the cleanup continues (hastened; further signals are not reported)`);
    hasten();
  });
  // The agent owns its rules file while it runs: `flowtop rules --rules` on it is refused meanwhile.
  const store = await RuleStore.open(flags.rules, { owner: 'agent' });
  const attribution = createLinuxBackend();
  const fleet = flags.fleet ? await startFleet(flags.fleet, flags.rules, store, log) : undefined;
  if (!flags.fleet) await sayIgnoredFleetCopy(flags.rules, log);
  // History is beside the verdict path, never on it: a file that cannot be used is said once and the
  // agent judges on without it.
  const started = flags.history ? await startAgentHistory(flags.history, attribution, log) : { off: 'turned off (--no-history)' };
  const history = 'off' in started ? undefined : started;
  const historyStatus = 'off' in started ? (() => HistoryState.off(started.off, flags.history)) : () => started.status();
  let fatal: string | undefined;
  const agent = new Agent({
    onFatal: (message) => {
      fatal = message;
      stop.request('fatal');
    },
    socketPath: flags.socket,
    queueNum: flags.queueNum,
    workers: flags.workers,
    defaultAction: flags.defaultAction,
    timeoutMs: flags.timeoutMs,
    failOpen: flags.failOpen,
    blockMode: flags.blockMode,
    inbound: flags.inbound,
    udpIdleMs: flags.udpIdleMs,
    rules: storeRuleBook(store),
    attribution,
    observers: [...(history ? [history.recorder] : []), ...(fleet ? [fleet.link] : [])],
    // Said in hello.mode.history, so `flowtop` and `flowtop history` read this file (not the default
    // path) without being told: 'off' when nothing is recorded (--no-history, or a file it cannot use).
    history: history && flags.history ? flags.history : 'off',
    historyStatus,
    ...(fleet?.selfToken ? { selfToken: fleet.selfToken } : {}),
    ...(fleet ? { fleetStatus: fleet.status } : {}),
    ...(flags.fleet ? { hostName: flags.fleet.host, establishIdentities: true } : {}),
  }, linuxAgentIo({ ...(flags.cgroup ? { cgroup: flags.cgroup } : {}), noBpf: flags.noBpf }));
  hasten = () => agent.hasten();
  fleet?.bind(agent);
  try {
    await agent.start();
  } catch (error) {
    await agent.stop().catch((e: Error) => log(`cleanup after the failed start: ${e.message}`));
    await fleet?.stop();
    await store.close().catch(() => undefined);
    await history?.close().catch(() => undefined);
    attribution.close?.();
    instance.release();
    throw new UserError(`agent could not start: ${(error as Error).message}`);
  }
  // Last line of defence: a bug on some path must not stop the firewall (an agent that dies leaves
  // its queue rules behind, and fail-closed they blackhole every new connection). Said loudly, kept going.
  const survive = (what: string) => (error: unknown): void => {
    process.stderr.write(`flowtop agent: BUG: ${what} (kept running): ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  };
  process.on('uncaughtException', survive('uncaught exception'));
  process.on('unhandledRejection', survive('unhandled rejection'));
  process.stderr.write(`flowtop agent: ready on ${flags.socket}\n`);
  const reason = await stop.requested;
  if (reason !== 'fatal') log(`${reason} received: stopping (removing the firewall rules, BPF programs and socket)`);
  await agent.stop();
  await fleet?.stop();
  await history?.close().catch((e: Error) => log(`history: ${e.message}`));
  await store.close().catch((e: Error) => log(`rules file: ${e.message}`));
  attribution.close?.();
  instance.release();
  if (fatal) throw new UserError(`agent stopped: ${fatal}`);
  return 0;
}
