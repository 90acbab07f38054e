// `flowtop list --json` (one snapshot) and `--jsonl` (a stream of flow changes), rendered from the
// same table state as the TUI. Also reached as `flowtop --once --json` / `flowtop --jsonl`.
import { filter, firstValueFrom, take, timeout } from 'rxjs';
import { UsageError, UserError } from '../errors.js';
import { parseFlags } from './flags.js';
import { flowJson, hostOf, snapshotJson } from '../app/json.js';
import { openSources, type SourceFlags } from '../app/setup.js';
import { createFlowStore } from '../app/store.js';
import { limitHeapGrowth } from '../app/heap-growth.js';
import { passwdUserNames } from '../app/users.js';
import type { TableState } from '../state/types.js';
import { escapeJsonControls } from '../text/controls.js';
import type { ConnectionStatus } from '../source/types.js';
import type { MergedSources } from '../source/merge.js';
import { FLEET_FLAG_OPTIONS, FLEET_USAGE, fleetOptionsFrom } from '../fleet/client-options.js';

export const LIST_USAGE = `Usage: flowtop list (--json | --jsonl) [--socket PATH]... [--nats URL [NATS FLAGS]] [--demo [SCENARIO]] [--wait MS]
  --json         print one snapshot of the current flows, with attributions, as JSON
  --jsonl        stream flows as JSON lines, one line each time a flow changes (Ctrl-C stops)
  --socket PATH  extension socket (repeatable; also FLOWTOP_SOCKET); default: the local agent,
                 else the passive monitor
  --demo [NAME]  an in-process demo extension playing a recorded scenario
  --wait MS      how long --json collects before printing (default 1500)
${FLEET_USAGE}Each flow's "source" is its extension socket, or with --nats its host ("host" says it for both).
`;

export interface ListOptions extends SourceFlags {
  mode: 'json' | 'jsonl';
  waitMs: number;
  maxFlows?: number;
}

/** Pulls `--demo [SCENARIO]` out of argv (parseArgs has no optional values). */
export function takeDemoFlag(argv: string[]): { argv: string[]; demo?: string | true } {
  const at = argv.findIndex((a) => a === '--demo' || a.startsWith('--demo='));
  if (at < 0) return { argv };
  const rest = [...argv];
  const arg = rest[at]!;
  if (arg.startsWith('--demo=')) {
    rest.splice(at, 1);
    return { argv: rest, demo: arg.slice(7) || true };
  }
  const next = rest[at + 1];
  if (next !== undefined && !next.startsWith('-')) {
    rest.splice(at, 2);
    return { argv: rest, demo: next };
  }
  rest.splice(at, 1);
  return { argv: rest, demo: true };
}

export function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${name} needs a positive whole number (got ${JSON.stringify(value)})`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { argv: rest, demo } = takeDemoFlag(argv);
  const { values } = parseFlags('list', {
    args: rest,
    options: {
      json: { type: 'boolean' },
      jsonl: { type: 'boolean' },
      once: { type: 'boolean' },
      socket: { type: 'string', multiple: true },
      ...FLEET_FLAG_OPTIONS,
      wait: { type: 'string' },
      'max-flows': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(LIST_USAGE);
    return 0;
  }
  if (values.json && values.jsonl) throw new UsageError('choose one of --json and --jsonl');
  if (!values.json && !values.jsonl) throw new UsageError('flowtop list needs --json (one snapshot) or --jsonl (a stream)');
  const fleet = fleetOptionsFrom(values, 'list');
  return runList({
    mode: values.jsonl ? 'jsonl' : 'json',
    sockets: values.socket ?? [],
    ...(fleet ? { fleet } : {}),
    demo,
    waitMs: positiveInt('--wait', values.wait, 1500),
    maxFlows: values['max-flows'] !== undefined ? positiveInt('--max-flows', values['max-flows'], 200_000) : undefined,
  });
}

export async function runList(options: ListOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const opened = await openSources(options, process.env);
  if (opened.note) process.stderr.write(`flowtop: ${opened.note}\n`);
  limitHeapGrowth(); // it holds a flow table as large as the TUI's (--jsonl runs for as long)
  const store = createFlowStore({
    sources: opened.merged,
    attributorFor: opened.attributorFor,
    userName: passwdUserNames(),
    clock: { now: () => Date.now() },
    table: options.maxFlows ? { maxFlows: options.maxFlows } : undefined,
  });
  const reach = watchReach(opened.merged);
  try {
    if (options.mode === 'json') {
      const state = await settle(store.states$, store.current(), options.waitMs);
      // An empty list would say "no connections"; the truth is that nothing could be asked.
      if (!reach.any() && state.flows.size === 0) await reach.firstAnswers(options.waitMs);
      if (!reach.any() && state.flows.size === 0) {
        throw new UserError(`nothing to show: could not reach ${reach.why()}`, 'start the agent (`sudo flowtop agent`), check --socket, or leave --socket out for the passive monitor');
      }
      // Names and hosts come from other processes: C1 and bidi controls leave escaped, as C0 ones do.
      out.write(escapeJsonControls(JSON.stringify(snapshotJson(state), null, 2)) + '\n');
      return 0;
    }
    return await stream(store.states$, out);
  } finally {
    reach.stop();
    store.close();
    await opened.close();
  }
}

/** Whether any source ever connected, and if none did, why not (each source's last status). */
function watchReach(merged: MergedSources): { any(): boolean; why(): string; firstAnswers(timeoutMs: number): Promise<void>; stop(): void } {
  let connected = false;
  const last = new Map<string, ConnectionStatus>();
  let changed = (): void => {};
  const sources = merged.sources;
  const subs = [merged.statuses$.subscribe((all) => {
    for (const { source, status } of all) {
      last.set(source, status);
      if (status.state === 'connected') connected = true;
    }
    changed();
  })];
  const waiting = (): boolean => sources.some((s) => (last.get(s.id)?.state ?? 'connecting') === 'connecting');
  const reason = (status: ConnectionStatus | undefined): string => {
    switch (status?.state) {
      case 'reconnecting':
      case 'disconnected':
        return status.reason;
      case 'version-mismatch':
        return `it speaks protocol v${status.theirs}, this flowtop v${status.ours}`;
      default:
        return 'no answer yet';
    }
  };
  return {
    any: () => connected,
    /** On a busy machine a first attempt can still be under way: wait (a while) for its outcome. */
    firstAnswers: (timeoutMs) => new Promise<void>((resolve) => {
      if (!waiting()) return resolve();
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        changed = () => {};
        resolve();
      }
      changed = () => {
        if (connected || !waiting()) done();
      };
    }),
    why: () => sources.map((s) => `${s.id} (${reason(last.get(s.id))})`).join('; '),
    stop: () => subs.forEach((sub) => sub.unsubscribe()),
  };
}

/** The snapshot once the wait is over and no attribution is pending (or twice the wait at most). */
async function settle(states$: import('rxjs').Observable<TableState>, first: TableState, waitMs: number): Promise<TableState> {
  let latest = first;
  const sub = states$.subscribe((s) => (latest = s));
  await new Promise((r) => setTimeout(r, waitMs));
  const pending = (s: TableState) => [...s.flows.values()].some((r) => r.attribution.trust === 'pending' || r.appAttribution?.trust === 'pending');
  if (pending(latest)) {
    await firstValueFrom(states$.pipe(filter((s) => !pending(s)), take(1), timeout(waitMs))).catch(() => undefined);
  }
  sub.unsubscribe();
  return latest;
}

/** One JSON line per flow change, until the output closes or the process is interrupted. */
function stream(states$: import('rxjs').Observable<TableState>, out: NodeJS.WritableStream): Promise<number> {
  return new Promise((resolve) => {
    let seen = 0;
    const stop = (code: number) => {
      sub.unsubscribe();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(code);
    };
    const onSignal = () => stop(0);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    out.on('error', () => stop(0)); // a closed pipe (`| head`) ends the stream quietly
    const sub = states$.subscribe((state) => {
      const lines: string[] = [];
      for (const row of state.flows.values()) if (row.rev > seen) lines.push(escapeJsonControls(JSON.stringify(flowJson(row, state.now, hostOf(state, row)))));
      seen = state.rev;
      if (lines.length > 0) out.write(lines.join('\n') + '\n');
    });
  });
}
