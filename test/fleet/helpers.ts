// Fixtures for the fleet tests: nats-server in a network namespace of its own (created here), joined to
// each agent's namespace by a veth pair whose two ends are both in test-created namespaces (the host's
// interfaces and rules are never touched), and a plain NATS client run beside the server.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns, missingCapability, waitFor } from '../agent/helpers.js';

const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => spawnSync(p, ['--version']).status === 0);
const TOOL = fileURLToPath(new URL('./fixtures/nats-tool.mjs', import.meta.url));

/** Under CI=true a missing capability (or nats-server) fails the suite instead of skipping it. */
export function skipUnlessFleetCapable(): boolean {
  const missing = missingCapability() ?? (NATS_SERVER ? undefined : 'needs nats-server (apt-get install nats-server)');
  if (!missing) return false;
  if (process.env['CI'] === 'true') throw new Error(`fleet tests cannot run: ${missing}`);
  process.stderr.write(`skipping fleet tests: ${missing}\n`);
  return true;
}

/** The NATS side: its own namespace, linked to agent namespaces by veth pairs (10.231.0.x/30 each). */
export class NatsNet {
  readonly ns = new Netns();
  private links = 0;
  private readonly servers: ChildProcess[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'flowtop-nats-'));

  /** The NATS side's address on the i-th link. */
  address(i: number): string {
    return `10.231.0.${4 * i + 1}`;
  }

  /** Joins `agentNs` to this namespace; returns the address the agent reaches NATS at. */
  link(agentNs: Netns): string {
    const i = this.links++;
    const base = 4 * i;
    const here = `vn${i}`;
    // Created in the NATS namespace with its peer placed straight into the agent's: never on the host.
    spawnOk('ip', ['-n', this.ns.name, 'link', 'add', here, 'type', 'veth', 'peer', 'name', 'vnats', 'netns', agentNs.name]);
    spawnOk('ip', ['-n', this.ns.name, 'addr', 'add', `10.231.0.${base + 1}/30`, 'dev', here]);
    spawnOk('ip', ['-n', this.ns.name, 'link', 'set', here, 'up']);
    spawnOk('ip', ['-n', agentNs.name, 'addr', 'add', `10.231.0.${base + 2}/30`, 'dev', 'vnats']);
    spawnOk('ip', ['-n', agentNs.name, 'link', 'set', 'vnats', 'up']);
    return `10.231.0.${base + 1}`;
  }

  /** Starts nats-server (JetStream on) in the NATS namespace on `port`; `cluster` joins it to others. */
  async start(port: number, cluster?: { name: string; port: number; routes: number[] }): Promise<ChildProcess> {
    const store = join(this.dir, `js-${port}`);
    const args = ['-a', '0.0.0.0', '-p', String(port), '-js', '-sd', store, '-n', `n${port}`];
    if (cluster) args.push('--cluster_name', cluster.name, '--cluster', `nats://127.0.0.1:${cluster.port}`, '--routes', cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    const proc = spawn(this.ns.enter[0]!, [...this.ns.enter.slice(1), NATS_SERVER!, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
    await waitFor(`nats-server on ${port} (${log.join('')})`, () => {
      if (proc.exitCode !== null) throw new Error(`nats-server exited: ${log.join('')}`);
      return log.join('').includes('Server is ready');
    }, 15_000);
    this.servers.push(proc);
    return proc;
  }

  /** A plain NATS client beside the server (in its namespace). */
  async client(servers: string, user?: [string, string]): Promise<NatsTool> {
    const proc = spawn(this.ns.enter[0]!, [...this.ns.enter.slice(1), process.execPath, TOOL, servers, ...(user ?? [])], { stdio: ['pipe', 'pipe', 'pipe'] });
    const tool = new NatsTool(proc);
    await waitFor('the NATS client', () => tool.out.some((o) => o['op'] === 'ready'), 10_000);
    return tool;
  }

  async stopAll(): Promise<void> {
    for (const p of this.servers) await killed(p);
    this.ns.delete();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class NatsTool {
  readonly out: Array<Record<string, unknown>> = [];
  private buf = '';
  private nextId = 1;

  constructor(readonly proc: ChildProcess) {
    proc.stdout?.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.out.push(JSON.parse(this.buf.slice(0, i)) as Record<string, unknown>);
        this.buf = this.buf.slice(i + 1);
      }
    });
  }

  private send(c: Record<string, unknown>): number {
    const id = this.nextId++;
    this.proc.stdin?.write(`${JSON.stringify({ ...c, id })}\n`);
    return id;
  }

  subscribe(subject: string): void {
    this.send({ op: 'sub', subject });
  }

  /** Every protocol message published so far on `subject` (NDJSON bodies, parsed). */
  events(subjectPrefix = ''): Array<Record<string, unknown>> {
    return this.out.filter((o) => o['op'] === 'msg' && String(o['subject']).startsWith(subjectPrefix))
      .flatMap((o) => String(o['body']).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
  }

  async request(subject: string, body: string, timeout = 3000): Promise<Array<Record<string, unknown>>> {
    return (await this.requestWithHeaders(subject, body, timeout)).messages;
  }

  async requestWithHeaders(subject: string, body: string, timeout = 3000): Promise<{ messages: Array<Record<string, unknown>>; headers: Record<string, string> }> {
    const id = this.send({ op: 'req', subject, body, timeout });
    const r = await waitFor(`a reply on ${subject}`, () => this.out.find((o) => o['op'] === 'reply' && o['id'] === id), timeout + 2000);
    if (r['error']) throw new Error(`request failed: ${String(r['error'])}`);
    const messages = String(r['body']).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    return { messages, headers: (r['headers'] ?? {}) as Record<string, string> };
  }

  async kv(op: 'kvput' | 'kvdel', bucket: string, key: string, value?: string): Promise<void> {
    const id = this.send({ op, bucket, key, value });
    const r = await waitFor(`${op} ${key}`, () => this.out.find((o) => o['op'] === 'done' && o['id'] === id), 10_000);
    if (r['error']) throw new Error(String(r['error']));
  }

  async close(): Promise<void> {
    await killed(this.proc);
  }
}

function spawnOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** Kills one process we started, by its PID, and waits for it to exit. */
export async function killed(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  await exited;
}
