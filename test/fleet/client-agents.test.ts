// The fleet client end to end with real agents: two agents in two namespaces publish to one
// nats-server in a third (the namespace harness of fleet.test.ts); the real client runs beside the
// server. It finds both hosts as they join, shows a program's pending flow on the second with the
// identity that host's agent established, and its verdict reaches that host: the program gets its
// data, decided by the client's NATS user. A client started later, with no replay, sees a flow
// pending now on the first host from that host's snapshot (`flowtop list --nats --json`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns, TestCgroup, buildAgent, removeBuild, startAgent, waitFor, type RunningAgent } from '../agent/helpers.js';
import { NatsNet, killed, skipUnlessFleetCapable } from './helpers.js';
import { greeter, reader, stopHosts } from './hosts.js';

const skip = skipUnlessFleetCapable();
const NATS_PORT = 14232;
const TIMEOUT_MS = 15_000;
const CLIENT = fileURLToPath(new URL('./fixtures/fleet-client.mjs', import.meta.url));

interface Table {
  sources: Array<{ id: string; fleet?: string; state: string }>;
  flows: Array<{ host: string; id: string; state: string; process: string; pid?: number; trust: string; decider?: string }>;
}

class FleetClient {
  readonly tables: Table[] = [];
  readonly errors: string[] = [];
  constructor(readonly proc: ChildProcess) {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const o = JSON.parse(buf.slice(0, i)) as { op: string } & Table & { message?: string };
        buf = buf.slice(i + 1);
        if (o.op === 'table') this.tables.push(o);
        if (o.op === 'error') this.errors.push(String(o.message));
      }
    });
  }
  get last(): Table | undefined {
    return this.tables.at(-1);
  }
  verdict(host: string, id: string, action: 'allow' | 'block'): void {
    this.proc.stdin!.write(`${JSON.stringify({ op: 'verdict', host, id, action })}\n`);
  }
}


describe.skipIf(skip)('the fleet client with real agents', () => {
  let nats: NatsNet;
  let client: FleetClient;
  const hosts: Array<{ name: string; ns: Netns; agent: RunningAgent; server: ChildProcess }> = [];
  const cg = skip ? undefined : new TestCgroup();
  let dist = '';

  beforeAll(async () => {
    dist = buildAgent();
    nats = new NatsNet();
    await nats.start(NATS_PORT);
    // The client starts first: both hosts join it later.
    client = new FleetClient(spawn(nats.ns.enter[0]!, [...nats.ns.enter.slice(1), process.execPath, CLIENT, dist, `nats://127.0.0.1:${NATS_PORT}`], { stdio: ['pipe', 'pipe', 'inherit'] }));
    for (let i = 1; i <= 2; i++) {
      const ns = new Netns();
      const address = nats.link(ns);
      const name = `host${i}`;
      const agent = await startAgent(ns, cg, ['--default', 'block', '--timeout', `${TIMEOUT_MS}ms`, '--nats', `nats://${address}:${NATS_PORT}`, '--nats-insecure', '--host-name', name]);
      hosts.push({ name, ns, agent, server: await greeter(ns, name, 8000 + i) });
    }
  }, 90_000);

  afterAll(async () => {
    if (client) await killed(client.proc);
    await stopHosts(hosts);
    await nats?.stopAll();
    cg?.delete();
    removeBuild();
  }, 60_000);

  it('finds both hosts as they join, and a verdict on the second host\'s pending flow reaches that host', async () => {
    await waitFor('both hosts connected in the client', () => ['host1', 'host2'].every((h) => client.last?.sources.some((s) => s.id === h && s.fleet === 'host' && s.state === 'connected')), 20_000);
    const program = reader(hosts[1]!.ns, cg!, 8002);
    const pending = await waitFor('the program\'s pending flow on host2, named by its agent', () => client.last?.flows.find((f) => f.host === 'host2' && f.pid === program.proc.pid && f.state === 'pending' && f.trust === 'secure'), TIMEOUT_MS - 2_000);
    expect(pending.process).toMatch(/^node/);
    client.verdict('host2', pending.id, 'allow');
    expect(await program.out.next((l) => l.startsWith('read') || l.startsWith('error') || l === 'timeout', 8_000)).toBe('read data for host2');
    const allowed = await waitFor('the flow allowed in the client', () => client.last?.flows.find((f) => f.host === 'host2' && f.id === pending.id && f.state !== 'pending'), 5_000);
    expect(allowed.decider).toMatch(/carol/);
    // Nothing of it on host1.
    expect(client.last!.flows.some((f) => f.host === 'host1' && f.pid === program.proc.pid)).toBe(false);
  }, 40_000);

  it('a client started later with no replay sees what is pending now from the snapshot', async () => {
    const program = reader(hosts[0]!.ns, cg!, 8001);
    await waitFor('the pending flow on host1 in the first client', () => client.last?.flows.find((f) => f.host === 'host1' && f.pid === program.proc.pid && f.state === 'pending'), 8_000);
    const run = spawnSync(nats.ns.enter[0]!, [...nats.ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), 'list', '--nats', `nats://127.0.0.1:${NATS_PORT}`, '--replay', '0', '--json', '--wait', '2500'], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    const snap = JSON.parse(run.stdout) as { flows: Array<{ host?: string; state: string; attribution: { pid?: number } }>; sources: Array<{ id: string; fleet?: string }> };
    expect(snap.sources.filter((s) => s.fleet === 'host').map((s) => s.id).sort()).toEqual(['host1', 'host2']);
    expect(snap.flows.some((f) => f.host === 'host1' && f.state === 'pending' && f.attribution.pid === program.proc.pid)).toBe(true);
    await killed(program.proc);
  }, 40_000);
});
