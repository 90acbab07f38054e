// A three-node NATS cluster (JetStream replicated) with two agents publishing under load; one node is
// killed mid-run. The agents fail over to the others and keep publishing and answering requests, and no
// pending flow waits past its deadline because of NATS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { readStatus } from '../../src/agent/status.js';
import { statusFileFor } from '../../src/agent/socket-files.js';
import { Netns, TestCgroup, buildAgent, cleanupDir, lines, removeBuild, spawnIn, startAgent, startServer, waitFor, type RunningAgent } from '../agent/helpers.js';
import { NatsNet, killed, skipUnlessFleetCapable, type NatsTool } from './helpers.js';

const skip = skipUnlessFleetCapable();
const PORTS = [14231, 14232, 14233];
const ROUTES = [16231, 16232, 16233];
const TIMEOUT_MS = 3000;
const ALLOWED_PORT = 8200; // a local rule allows it: events without a person
const HELD_PORT = 8201; // no rule: pending until a verdict or the deadline

/** Connects to `port` every `everyMs` for `forMs`; prints one line per attempt: "ok MS" or "fail CODE MS". */
const loadScript = (port: number, everyMs: number, forMs: number): string[] => [process.execPath, '-e', `
  const net = require('net'); const end = Date.now() + ${forMs};
  const one = () => { const t = Date.now(); const s = net.connect(${port}, '127.0.0.1');
    s.on('connect', () => { console.log('ok', Date.now() - t); s.destroy(); });
    s.on('error', (e) => console.log('fail', e.code, Date.now() - t)); };
  const timer = setInterval(() => { if (Date.now() > end) { clearInterval(timer); setTimeout(() => process.exit(0), ${TIMEOUT_MS + 2000}); } else one(); }, ${everyMs});
`];

describe.skipIf(skip)('a three-node NATS cluster with a node killed under load', () => {
  let nats: NatsNet;
  const nodes: ChildProcess[] = [];
  let central: NatsTool;
  const agents: Array<{ name: string; ns: Netns; agent: RunningAgent; servers: ChildProcess[] }> = [];
  const cg = skip ? undefined : new TestCgroup();

  beforeAll(async () => {
    buildAgent();
    nats = new NatsNet();
    const starts = PORTS.map((port, i) => nats.start(port, { name: 'ftc', port: ROUTES[i]!, routes: ROUTES.filter((_, j) => j !== i) }));
    nodes.push(...(await Promise.all(starts)));
    central = await nats.client(PORTS.map((p) => `nats://127.0.0.1:${p}`).join(','));
    central.subscribe('flowtop.events.>');
    for (let i = 1; i <= 2; i++) {
      const ns = new Netns();
      const address = nats.link(ns);
      const name = `c${i}`;
      const agent = await startAgent(ns, cg, [
        '--default', 'block', '--timeout', `${TIMEOUT_MS}ms`, '--host-name', name, '--nats-insecure',
        ...PORTS.flatMap((p) => ['--nats', `nats://${address}:${p}`]),
      ]);
      agents.push({ name, ns, agent, servers: [await startServer(ns, ALLOWED_PORT), await startServer(ns, HELD_PORT)] });
    }
    for (const a of agents) {
      await waitFor(`${a.name} connected and its stream ready`, () => {
        const f = fleetOf(a.agent);
        return f?.state === 'connected' && f.announced !== undefined && f.problem === undefined;
      }, 30_000).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(fleetOf(a.agent))} ${a.agent.stderr.join(' | ')}`); });
    }
  }, 90_000);

  afterAll(async () => {
    await central?.close();
    for (const a of agents) {
      for (const s of a.servers) await killed(s);
      await a.agent.stop();
      a.ns.delete();
      cleanupDir(a.agent.dir);
    }
    await nats?.stopAll();
    cg?.delete();
    removeBuild();
  }, 60_000);

  it('the agents fail over and keep publishing; pending flows end by their deadline', async () => {
    const loads: Array<{ out: ReturnType<typeof lines>; held: boolean }> = [];
    for (const a of agents) {
      const rule = spawnIn(a.ns, undefined, [process.execPath, `${buildAgent()}/run-agent.mjs`, 'rules', 'add', '--socket', a.agent.socket, '--allow', '--port', String(ALLOWED_PORT), '--address', '127.0.0.1']);
      await new Promise((resolve) => rule.on('exit', resolve));
      for (const [port, held] of [[ALLOWED_PORT, false], [HELD_PORT, true]] as const) {
        const proc = spawnIn(a.ns, cg, loadScript(port, held ? 400 : 25, 6000));
        loads.push({ out: lines(proc), held });
      }
    }
    await new Promise((r) => setTimeout(r, 1500));
    // Kill the node the first agent is connected to (its server name is n<port>).
    const server = fleetOf(agents[0]!.agent)?.server ?? '';
    const victim = PORTS.findIndex((p) => server === `n${p}`);
    const killedAt = Date.now();
    await killed(nodes[victim >= 0 ? victim : 0]!);
    const before = agents.map((a) => fleetOf(a.agent)?.published ?? 0);
    for (const [i, a] of agents.entries()) {
      await waitFor(`${a.name} publishing again after the node died`, () => {
        const f = fleetOf(a.agent);
        return f?.state === 'connected' && f.published > before[i]! + 20 ? f : undefined;
      }, 15_000);
    }
    // Requests reach both agents through the surviving nodes.
    for (const a of agents) {
      // Interest moves between nodes after a failover: a client retries a request that found no responder.
      let reply: Array<Record<string, unknown>> = [];
      for (let tries = 0; tries < 20 && reply.length === 0; tries++) {
        reply = await central.request(`flowtop.rpc.${a.name}.ops`, '{"type":"rules-list","ref":"l"}', 2000).catch(async () => {
          await new Promise((r) => setTimeout(r, 250));
          return [];
        });
      }
      expect(reply[0]).toMatchObject({ type: 'rules', ref: 'l' });
    }
    // Every connection finished: the allowed ones connected, the held ones were refused at their
    // deadline (--default block, nobody answering), none later than the deadline plus scheduling slack.
    await new Promise((r) => setTimeout(r, 6000 + TIMEOUT_MS + 1500 - (Date.now() - killedAt)));
    let held = 0;
    for (const l of loads) {
      for (const line of l.out.all) {
        const [outcome, , ms] = line.split(' ');
        if (l.held) {
          held++;
          expect(line).toMatch(/^fail /);
          expect(Number(ms)).toBeLessThan(TIMEOUT_MS + 1500);
        } else expect(outcome, line).toBe('ok');
      }
    }
    expect(held).toBeGreaterThan(10);
    const published = central.events('flowtop.events.');
    expect(published.filter((m) => m['type'] === 'flow').length).toBeGreaterThan(100);
  }, 60_000);
});

function fleetOf(agent: RunningAgent): NonNullable<Exclude<ReturnType<typeof readStatus>, string | undefined>['fleet']> | undefined {
  const s = readStatus(statusFileFor(agent.socket));
  return typeof s === 'object' ? s.fleet : undefined;
}
