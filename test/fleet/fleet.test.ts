// Three agents in three namespaces publish to one nats-server (in a fourth namespace, joined to each by
// a veth pair); one central NATS client sees all three, decides a pending flow on the second by
// request, puts a fleet rule in the bucket that all three enforce, and finally the server is stopped
// while a flow is pending: the agent's own default decides it at the deadline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, TestClient, TestCgroup, buildAgent, removeBuild, startAgent, waitFor } from '../agent/helpers.js';
import { readStatus, type AgentStatus } from '../../src/agent/status.js';
import { statusFileFor } from '../../src/agent/socket-files.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { NatsNet, killed, skipUnlessFleetCapable, type NatsTool } from './helpers.js';
import { greeter, reader, stopHosts, type FleetHost } from './hosts.js';

const skip = skipUnlessFleetCapable();
const NATS_PORT = 14222;
/** Long enough for the agent to establish a program's identity while its flow waits (hashing or
 *  checking node's ~100 MB executable against its package takes seconds on a loaded machine). */
const TIMEOUT_MS = 10_000;


describe.skipIf(skip)('a fleet of three agents on one NATS server', () => {
  let nats: NatsNet;
  let natsServer: ChildProcess;
  let central: NatsTool;
  const hosts: FleetHost[] = [];
  const cg = skip ? undefined : new TestCgroup();

  beforeAll(async () => {
    buildAgent();
    nats = new NatsNet();
    natsServer = await nats.start(NATS_PORT);
    central = await nats.client(`nats://127.0.0.1:${NATS_PORT}`);
    central.subscribe('flowtop.events.>');
    for (let i = 1; i <= 3; i++) {
      const ns = new Netns();
      const address = nats.link(ns);
      const name = `host${i}`;
      const agent = await startAgent(ns, cg, agentFlags(name, address));
      hosts.push({ name, ns, agent, server: await greeter(ns, name, 8000 + i) });
    }
    // Each agent is on line: announced and publishing.
    for (const h of hosts) await waitFor(`${h.name} connected`, () => statusOf(h)?.state === 'connected', 15_000);
  }, 90_000);

  afterAll(async () => {
    await central?.close();
    await stopHosts(hosts);
    await nats?.stopAll();
    cg?.delete();
    removeBuild();
  }, 60_000);

  it('the central client sees all three and decides a pending flow on the second, recording the NATS user', async () => {
    for (const [i, h] of hosts.entries()) reader(h.ns, cg!, 8001 + i, 15_000).proc.unref();
    const pendingOn = (host: string) => central.events(`flowtop.events.${host}`).find((m) => m['type'] === 'flow' && (m['flow'] as { pending?: unknown; remote: { port: number } }).pending);
    for (const h of hosts) await waitFor(`a pending flow from ${h.name}`, () => pendingOn(h.name), 8000);
    // The fleet client itself (`flowtop list --nats`, beside the server) sees every host's pending flow.
    const listed = flowtopIn(nats.ns, ['list', '--nats', `nats://127.0.0.1:${NATS_PORT}`, '--json', '--wait', '2500']);
    expect(listed.status, listed.stderr).toBe(0);
    const rows = (JSON.parse(listed.stdout) as { flows: Array<{ host?: string; pending?: unknown; remote: { port: number } }> }).flows;
    for (const [i, h] of hosts.entries()) expect(rows.some((r) => r.host === h.name && r.remote.port === 8001 + i), `${h.name} in flowtop list --nats`).toBe(true);

    const second = hosts[1]!;
    const program = reader(second.ns, cg!, 8002, 15_000);
    const flow = await waitFor('the program\'s pending flow on host2', () => central.events('flowtop.events.host2').find((m) => {
      const f = m['flow'] as { pending?: unknown; remote: { port: number }; pid?: number } | undefined;
      return m['type'] === 'flow' && f?.pending && f.pid === program.proc.pid;
    }), 8000);
    const id = (flow['flow'] as { id: string }).id;
    // While it waits, the agent establishes the program's code identity for the client (which cannot
    // check this host's tokens) and publishes it as an update of the pending flow.
    const identified = await waitFor('the flow\'s identity on the stream', () => central.events('flowtop.events.host2').find((m) => m['type'] === 'flow' && (m['flow'] as { id: string }).id === id && (m['flow'] as { identity?: unknown }).identity), TIMEOUT_MS - 1000);
    expect((identified['flow'] as { identity: { kind: string } }).identity.kind).toMatch(/^(sha256|package)$/);
    const body = JSON.stringify({ type: 'verdict', id, action: 'allow', remember: 'once', ref: 'r1' });
    const reply = await central.request('flowtop.rpc.host2.alice', body);
    expect(reply[0]).toMatchObject({ type: 'verdict', id, verdict: { action: 'allow', by: 'user', decider: `nats:alice@n${NATS_PORT}` } });
    expect(await program.out.next((l) => l.startsWith('read') || l.startsWith('error') || l === 'timeout', 5000)).toBe('read data for host2');

    // A retry is answered with the same verdict, and applied once: one verdict event on the stream.
    const retry = await central.request('flowtop.rpc.host2.alice', body.replace('r1', 'r2'));
    expect(retry[0]).toMatchObject({ type: 'verdict', id, verdict: { decider: `nats:alice@n${NATS_PORT}` } });
    await new Promise((r) => setTimeout(r, 200));
    expect(central.events('flowtop.events.host2').filter((m) => m['type'] === 'verdict' && m['id'] === id)).toHaveLength(1);

    // A bad body is answered with an error; the agent carries on.
    const bad = await central.request('flowtop.rpc.host2.alice', '{"type":"verdict","id":');
    expect(bad[0]).toMatchObject({ type: 'error', code: 'bad-json' });
    const { messages: snapshot, headers } = await central.requestWithHeaders('flowtop.rpc.host2.alice', '{"type":"snapshot"}');
    expect(snapshot[0]).toMatchObject({ type: 'hello', host: 'host2' });
    expect(snapshot.some((m) => m['type'] === 'rules')).toBe(true);
    // The last events batch queued before the snapshot: the client keeps only later ones.
    expect(headers['Flowtop-Last-Batch']).toMatch(/^\d+\.\d+$/);

  }, 40_000);

  it('fleet rules added with `flowtop rules --nats` and in the bucket are enforced at once, kept beside the rules file, and cannot be removed locally', async () => {
    const cli = (...args: string[]) => flowtopIn(nats.ns, ['rules', ...args, '--nats', `nats://127.0.0.1:${NATS_PORT}`]);
    const added = cli('add', '--all', '--block', '--reject', '--port', '8100', '--note', 'fleet test');
    expect(added.status, added.stderr).toBe(0);
    // One host's rule, put in the bucket directly (a bare spec): only host3 takes it.
    await central.kv('kvput', 'flowtop-rules', 'host.host3.only-3', JSON.stringify({ action: 'block', endpoint: { port: 8101 }, duration: { kind: 'always' } }));
    for (const h of hosts) await waitFor(`${h.name} enforcing the fleet rules`, () => statusOf(h)?.fleetRules === (h.name === 'host3' ? 2 : 1), 8000);
    const listed = JSON.parse(cli('list', '--json').stdout) as Array<{ id: string; action: string; endpoint?: { port?: number } }>;
    expect(listed.map((r) => [r.id.replace(/\.r[0-9a-f]{12}$/, '.ID'), r.action, r.endpoint?.port])).toEqual([['all.ID', 'block', 8100], ['host.host3.only-3', 'block', 8101]]);
    const key = listed.find((r) => r.id.startsWith('all.'))!.id;
    for (const h of hosts) {
      const p = reader(h.ns, cg!, 8100, 15_000);
      // Blocked by the rule at once (reject), not held until the deadline.
      expect(await p.out.next((l) => l.startsWith('read') || l.startsWith('error') || l === 'timeout', 3000)).toMatch(/^error (ECONNREFUSED|ECONNRESET|ECONNABORTED)/);
      const copy = join(h.agent.dir, 'rules.fleet.json');
      await waitFor('the local copy', () => existsSync(copy) && readFileSync(copy, 'utf8').includes(key), 3000);
    }
    const client = new TestClient(hosts[0]!.agent.socket);
    await client.subscribe();
    client.send({ type: 'rule-remove', id: `fleet:${key}`, ref: 'rm' });
    const refused = await client.waitFor<Extract<ExtensionMessage, { type: 'error' }>>('the refusal', (m) => m.type === 'error' && m.ref === 'rm');
    expect(refused.code).toBe('not-supported');
    expect(refused.message).toContain(`fleet rule: it lives in the fleet's NATS rules bucket under key "${key}"`);
    client.close();
    const removed = cli('rm', 'host.host3.only-3');
    expect(removed.status, removed.stderr).toBe(0);
    await waitFor('host3 dropping its own fleet rule', () => statusOf(hosts[2]!)?.fleetRules === 1, 8000);
    // all.… stays for the next test: enforced from the local copy while NATS is down.
  }, 60_000);

  it('with NATS stopped while a flow is pending, the agent\'s own default decides it at the deadline; restarted without NATS, it still enforces the fleet rules', async () => {
    const first = hosts[0]!;
    const program = reader(first.ns, cg!, 8001, 15_000);
    await waitFor('the pending flow published', () => central.events('flowtop.events.host1').some((m) => m['type'] === 'flow' && (m['flow'] as { pid?: number }).pid === program.proc.pid), 5000);
    const stoppedAt = Date.now();
    await killed(natsServer);
    // --default block: refused at the deadline (TIMEOUT_MS after the flow was seen), not later.
    expect(await program.out.next((l) => l.startsWith('read') || l.startsWith('error') || l === 'timeout', TIMEOUT_MS + 3000)).toMatch(/^error/);
    expect(Date.now() - stoppedAt).toBeLessThan(TIMEOUT_MS + 1500);
    await waitFor('the link said down', () => statusOf(first)?.state !== 'connected', 5000);
    // Restarted while NATS is down: the fleet rule from the local copy decides at once.
    expect(await first.agent.stop()).toBe(0);
    first.agent = await startAgent(first.ns, cg, agentFlags(first.name, nats.address(0)), first.agent.dir);
    const blocked = reader(first.ns, cg!, 8100, 15_000);
    expect(await blocked.out.next((l) => l.startsWith('read') || l.startsWith('error') || l === 'timeout', 3000)).toMatch(/^error (ECONNREFUSED|ECONNRESET|ECONNABORTED)/);
    expect(statusOf(first)?.fleetRules).toBe(1);
  }, 60_000);
});

/** `flowtop …` run in a namespace; stdout, stderr, status. */
function flowtopIn(ns: Netns, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(buildAgent(), 'run-agent.mjs'), ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function agentFlags(name: string, address: string): string[] {
  return ['--default', 'block', '--timeout', `${TIMEOUT_MS}ms`, '--nats', `nats://${address}:${NATS_PORT}`, '--nats-insecure', '--host-name', name];
}

function statusOf(h: FleetHost): AgentStatus['fleet'] & { ownConnections: number } | undefined {
  const s = readStatus(statusFileFor(h.agent.socket));
  return typeof s === 'object' && s.fleet ? { ...s.fleet, ownConnections: s.counters.ownConnections ?? 0 } : undefined;
}
