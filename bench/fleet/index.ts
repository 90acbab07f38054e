// Fleet benchmark: simulated hosts (bench/fleet/sim-agent.ts: the fleet wire exactly, generated
// protocol v1 events) publish into one nats-server on loopback; one central client (its own process,
// bench/fleet/client.ts) reads them all. Printed against the targets of issue 19: 50 hosts × 200
// events/s = 10,000 events/s with the client under 50 % of a core, event p99 ≤ 100 ms, verdict round
// trip p99 ≤ 50 ms; the client's RSS and the server's CPU beside them; then more hosts and events
// until the client falls behind. The machine's load average is printed too: the simulated agents run
// on the same cores as the client and the server.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpuMsFrom } from '../cpu-time.js';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimAgent, prepareFleet } from './sim-agent.js';

const NATS = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TICK_MS = 100;

interface Window {
  eventLatency: number[];
  verdictRtt: number[];
  cpu: number;
  rss: number;
  eventsPerSecond: number;
  rows: number;
  hosts: number;
  awaiting: number;
}

const q = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
function line(what: string, value: string, target: string, ok: boolean | undefined): void {
  process.stdout.write(`${what.padEnd(52)} ${value.padStart(16)}   target ${target.padEnd(10)} ${ok === undefined ? '' : ok ? 'ok' : 'MISSED'}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startServer(): Promise<{ url: string; child: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ftbench-nats-'));
  const port = await freePort();
  const child = spawn(NATS, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${log}`)), 10_000);
    child.stderr!.on('data', (b: Buffer) => {
      log += b.toString();
      if (/Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { url: `nats://127.0.0.1:${port}`, child, dir };
}

/** CPU seconds a process used so far (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const ms = cpuMsFrom(`/proc/${pid}/stat`);
  if (ms === undefined) throw new Error(`process ${pid} is gone`);
  return ms / 1000;
}

const server = await startServer();
await prepareFleet(server.url);
const client = fork(join(fileURLToPath(new URL('.', import.meta.url)), 'client.js'), [server.url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
await new Promise<void>((r) => client.once('message', () => r()));
const ask = (cmd: string): Promise<Window> => {
  const answer = new Promise<Window>((r) => client.once('message', (m) => r(m as Window)));
  client.send({ cmd });
  return answer;
};

const agents: SimAgent[] = [];
async function hosts(n: number): Promise<void> {
  while (agents.length < n) agents.push(await SimAgent.start({ url: server.url, host: `host-${String(agents.length + 1).padStart(3, '0')}` }));
}

/** Runs `perHost` events/s on every host for SECONDS, a pending flow every 100 ms on a host in turn. */
async function load(perHost: number, seconds: number): Promise<{ window: Window; published: number; server: number; generator: number; load: number[] }> {
  const perTick = Math.max(1, Math.round((perHost * TICK_MS) / 1000));
  const before = agents.reduce((n, a) => n + a.published, 0);
  const serverCpu = cpuSeconds(server.child.pid!);
  let turn = 0;
  let busy = false;
  const ticker = setInterval(() => {
    if (busy) return; // the generator itself fell behind: said below as the published rate
    busy = true;
    void Promise.all(agents.map((a) => a.tick(perTick))).finally(() => (busy = false));
  }, TICK_MS);
  const pending = setInterval(() => {
    const a = agents[turn++ % agents.length]!;
    const flow = a.newFlow({ pending: { deadline: Date.now() + 30_000 } });
    a.live.set(flow.id, flow);
    void a.publish([{ type: 'flow', flow }]);
  }, 100);
  await new Promise((r) => setTimeout(r, 2_000)); // warm up: hosts found, snapshots answered
  await ask('start');
  const t0 = performance.now();
  const p0 = agents.reduce((n, a) => n + a.published, 0);
  const s0 = cpuSeconds(server.child.pid!);
  const g0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const window = await ask('stop');
  const elapsed = (performance.now() - t0) / 1000;
  const published = (agents.reduce((n, a) => n + a.published, 0) - p0) / elapsed;
  const serverShare = (cpuSeconds(server.child.pid!) - s0) / elapsed;
  const g = process.cpuUsage(g0);
  const generator = (g.user + g.system) / 1e6 / elapsed;
  clearInterval(ticker);
  clearInterval(pending);
  void before;
  void serverCpu;
  await new Promise((r) => setTimeout(r, 1_500)); // let the backlog drain before the next step
  return { window, published, server: serverShare, generator, load: loadavg() };
}

const pct = (x: number) => `${(x * 100).toFixed(0)} % of a core`;
const msText = (x: number) => (Number.isNaN(x) ? 'none' : `${x.toFixed(1)} ms`);

process.stdout.write(`fleet bench: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average before ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
process.stdout.write(`simulated agents: generated protocol v1 events over the fleet wire (bench/fleet/sim-agent.ts), ${SECONDS} s per step\n\n`);

// The floor: a light load, so what the pipeline itself adds shows apart from the machine's contention.
await hosts(5);
const floor = await load(20, Math.max(4, Math.round(SECONDS / 2)));
process.stdout.write(`floor: 5 hosts × 20 events/s: event p50 ${msText(q(floor.window.eventLatency, 0.5))} p99 ${msText(q(floor.window.eventLatency, 0.99))}, verdict round trip p50 ${msText(q(floor.window.verdictRtt, 0.5))} p99 ${msText(q(floor.window.verdictRtt, 0.99))}, load average ${floor.load[0]!.toFixed(2)}\n\n`);

await hosts(50);
const main = await load(200, SECONDS);
const w = main.window;
process.stdout.write(`50 hosts × 200 events/s (published ${main.published.toFixed(0)}/s, client read ${w.eventsPerSecond.toFixed(0)}/s, ${w.rows} rows, ${w.hosts} hosts)\n`);
line('event latency publish → client table, p50', msText(q(w.eventLatency, 0.5)), '', undefined);
line('event latency publish → client table, p99', msText(q(w.eventLatency, 0.99)), '≤ 100 ms', q(w.eventLatency, 0.99) <= 100);
line('verdict round trip key → agent answer in table, p50', msText(q(w.verdictRtt, 0.5)), '', undefined);
line('verdict round trip key → agent answer in table, p99', msText(q(w.verdictRtt, 0.99)), '≤ 50 ms', q(w.verdictRtt, 0.99) <= 50);
line('central client CPU', pct(w.cpu), '< 50 %', w.cpu < 0.5);
line('central client RSS', `${(w.rss / 1024 / 1024).toFixed(0)} MB`, '', undefined);
line('nats-server CPU', pct(main.server), '', undefined);
line('simulated agents (50 connections, one process) CPU', pct(main.generator), '', undefined);
line('load average (1 min) during the step', main.load[0]!.toFixed(2), '', undefined);
process.stdout.write(`(verdicts measured: ${w.verdictRtt.length}, event samples: ${w.eventLatency.length})\n\n`);

// Ramp: more events per host, then more hosts, until the client falls behind (event p99 over 1 s,
// or it reads under 90 % of what was published, or it needs a whole core).
process.stdout.write('ramp (until the client falls behind):\n');
process.stdout.write(`${'hosts'.padStart(6)} ${'ev/s/host'.padStart(10)} ${'published/s'.padStart(12)} ${'read/s'.padStart(8)} ${'ev p50'.padStart(9)} ${'ev p99'.padStart(9)} ${'rtt p99'.padStart(9)} ${'client'.padStart(7)} ${'server'.padStart(7)} ${'load1'.padStart(6)}\n`);
let lastGood = '10,000 events/s from 50 hosts';
for (const [n, perHost] of [[50, 400], [100, 200], [100, 300], [150, 300], [200, 300], [200, 400]] as const) {
  await hosts(n);
  const r = await load(perHost, Math.max(6, Math.round(SECONDS * 0.6)));
  const x = r.window;
  const p99 = q(x.eventLatency, 0.99);
  process.stdout.write(`${String(n).padStart(6)} ${String(perHost).padStart(10)} ${r.published.toFixed(0).padStart(12)} ${x.eventsPerSecond.toFixed(0).padStart(8)} ${msText(q(x.eventLatency, 0.5)).padStart(9)} ${msText(p99).padStart(9)} ${msText(q(x.verdictRtt, 0.99)).padStart(9)} ${`${(x.cpu * 100).toFixed(0)}%`.padStart(7)} ${`${(r.server * 100).toFixed(0)}%`.padStart(7)} ${r.load[0]!.toFixed(2).padStart(6)}\n`);
  const behind = !(p99 <= 1_000) || x.eventsPerSecond < 0.9 * r.published || x.cpu > 0.95;
  if (behind) {
    process.stdout.write(`falls behind at ${n} hosts × ${perHost} events/s (${r.published.toFixed(0)} published/s); it kept up with ${lastGood}\n`);
    break;
  }
  if (r.published < 0.8 * n * perHost) {
    process.stdout.write(`the simulated agents could publish only ${r.published.toFixed(0)} of ${n * perHost} events/s on this machine: the ramp stops here, the client still kept up\n`);
    lastGood = `${r.published.toFixed(0)} events/s from ${n} hosts`;
    break;
  }
  lastGood = `${r.published.toFixed(0)} events/s from ${n} hosts`;
}
process.stdout.write(`scales to: ${lastGood}\n`);

client.send({ cmd: 'exit' });
for (const a of agents) await a.stop();
server.child.kill('SIGKILL');
rmSync(server.dir, { recursive: true, force: true });
process.exit(0);
