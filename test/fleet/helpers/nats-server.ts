// A real nats-server for fleet tests: JetStream on, loopback only, a port it picks, its store in a
// temporary folder; stopped by its PID. Missing nats-server fails under CI=true (CI installs it) and
// skips elsewhere.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER = process.env['NATS_SERVER'] ?? '/usr/sbin/nats-server';

/** True when the tests must be skipped (no nats-server here, and not CI). */
export function skipWithoutNats(): boolean {
  const probe = spawnSync(NATS_SERVER, ['--version'], { encoding: 'utf8' });
  if (probe.status === 0) return false;
  if (process.env['CI'] === 'true') throw new Error(`fleet tests cannot run: ${NATS_SERVER} is missing (apt-get install nats-server)`);
  process.stderr.write(`skipping fleet tests: ${NATS_SERVER} is missing\n`);
  return true;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatsServer {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A port another process took between freePort() and nats-server binding it: try another. */
class PortTaken extends Error {}

export async function startNatsServer(extraArgs: string[] = []): Promise<NatsServer> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await startNode(await freePort(), extraArgs, 10_000);
    } catch (error) {
      if (!(error instanceof PortTaken)) throw error;
    }
  }
  throw new Error('nats-server: no free port after 5 tries');
}

/** A cluster of `size` JetStream nodes on loopback (each its own port, routes between them). */
export async function startNatsCluster(size: number): Promise<NatsServer[]> {
  const ports: Array<{ client: number; route: number }> = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), route: await freePort() });
  const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`).join(',');
  const name = `ftc${process.pid}`;
  return Promise.all(ports.map((p, i) => startNode(p.client, ['-n', `${name}-${i}`, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${p.route}`, '--routes', routes])));
}

async function startNode(port: number, args: string[], readyTimeoutMs = 15_000): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ftnats-'));
  const child: ChildProcess = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), readyTimeoutMs);
    child.stderr!.on('data', (b: Buffer) => {
      log += b.toString();
      if (/Server is ready/.test(log)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once('exit', () => resolve(false));
  });
  if (!ready) {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (/address already in use/i.test(log)) throw new PortTaken(`port ${port} is taken`);
    throw new Error(`nats-server did not start: ${log.slice(-500)}`);
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        process.kill(child.pid!, 'SIGKILL');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
