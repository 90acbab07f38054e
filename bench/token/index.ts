// Token-build micro-benchmark: nanoseconds per Linux process token, on the agent's fast path (the
// token cache: a miss builds from /proc and a pidfd, a hit re-checks the pidfd and the executable)
// and on the one-shot route the monitor and `flowtop inspect` use. Run: npm run bench -- token [processes=200] [rounds=20]
import { spawn, type ChildProcess } from 'node:child_process';
import { TokenCache } from '../../src/agent/token-cache.js';
import { makeLinuxToken } from '../../src/native/linux/token.js';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Wall-clock and CPU (user + system) nanoseconds per operation. CPU time is the steadier figure on a
 *  shared machine: waiting for a core does not count. */
function nsPer(count: number, run: () => void): { wall: number; cpu: number } {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  run();
  const used = process.cpuUsage(cpu);
  return { wall: Number(process.hrtime.bigint() - start) / count, cpu: ((used.user + used.system) * 1000) / count };
}

/** The median of several timed runs: one slow run (a shared machine) does not move the figure. */
function median(runs: number[]): number {
  const sorted = [...runs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function figures(runs: Array<{ wall: number; cpu: number }>): string {
  return `${fmt(median(runs.map((r) => r.wall))).padStart(9)} wall ${fmt(median(runs.map((r) => r.cpu))).padStart(9)} cpu`;
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') {
    process.stdout.write('token bench: Linux only; skipping\n');
    return;
  }
  const count = Number(process.argv[2] ?? 200);
  const rounds = Number(process.argv[3] ?? 20);
  const children: ChildProcess[] = [];
  for (let i = 0; i < count; i++) children.push(spawn('sleep', ['600'], { stdio: 'ignore' }));
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const pids = children.map((c) => c.pid!);
    for (const pid of pids) if (!makeLinuxToken(pid)) throw new Error(`no token for ${pid}`);

    const miss: Array<{ wall: number; cpu: number }> = [];
    const hit: Array<{ wall: number; cpu: number }> = [];
    const oneShot: Array<{ wall: number; cpu: number }> = [];
    for (let round = 0; round < rounds; round++) {
      const cache = new TokenCache(count * 2);
      miss.push(nsPer(pids.length, () => {
        for (const pid of pids) cache.get(pid);
      }));
      hit.push(nsPer(pids.length * 10, () => {
        for (let i = 0; i < 10; i++) for (const pid of pids) cache.get(pid);
      }));
      cache.clear();
      oneShot.push(nsPer(pids.length, () => {
        for (const pid of pids) makeLinuxToken(pid);
      }));
    }
    process.stdout.write(`token build, ${count} live processes, median of ${rounds} rounds (ns per token)\n`);
    process.stdout.write(`  agent cache miss (build from /proc + pidfd)  ${figures(miss)}\n`);
    process.stdout.write(`  agent cache hit (pidfd alive + exe re-check) ${figures(hit)}\n`);
    process.stdout.write(`  one-shot makeLinuxToken                      ${figures(oneShot)}\n`);
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

await main();
