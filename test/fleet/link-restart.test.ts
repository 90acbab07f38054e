// The agent's NATS link thread dies (a bug stands in: the test-only FLOWTOP_TEST_LINK_THREAD_FAULT=crash:3
// makes each of its first three threads throw right after its first acknowledged publish) and the
// agent starts it again, 1 s, 2 s and then 4 s later, keeping what came meanwhile: events are published again
// afterwards, the log and `flowtop agent --status` say so, and the agent decides locally throughout.
// A thread that hangs instead (hang:1: blocked for good) is ended once silent for 15 s, and likewise
// started again. A real agent in a namespace, a real nats-server in another, joined by a veth pair.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Netns, TestCgroup, buildAgent, lines, removeBuild, spawnIn, startAgent, waitFor } from '../agent/helpers.js';
import { readStatus, type AgentStatus } from '../../src/agent/status.js';
import { statusFileFor } from '../../src/agent/socket-files.js';
import { NatsNet, skipUnlessFleetCapable, type NatsTool } from './helpers.js';
import { greeter, stopHosts, type FleetHost } from './hosts.js';
import { restartDelay, type FleetLink } from '../../src/fleet/agent-link.js';
import type { natsLinkConfig as NatsLinkConfigFn } from '../../src/fleet/connect-options.js';
import { pathToFileURL } from 'node:url';
import { startNatsServer } from './helpers/nats-server.js';
import { flowOf } from './helpers/test-agent.js';

const skip = skipUnlessFleetCapable();
const NATS_PORT = 14232;
const GREETER_PORT = 8301;

describe('the pause before a link thread is started again', () => {
  it('is 1 s, doubling to at most 30 s: a thread that dies at once cannot spin', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map(restartDelay)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });
});

describe.skipIf(skip)('the pause after a thread that ran a while', () => {
  it('starts again at 1 s: the deaths in a row are counted from there', async () => {
    const server = await startNatsServer();
    // The link thread is compiled JavaScript (a worker thread is not transformed by the test runner).
    const dist = buildAgent();
    const { FleetLink: Link } = (await import(pathToFileURL(join(dist, 'fleet/agent-link.js')).href)) as { FleetLink: typeof FleetLink };
    const { natsLinkConfig } = (await import(pathToFileURL(join(dist, 'fleet/connect-options.js')).href)) as { natsLinkConfig: typeof NatsLinkConfigFn };
    // Threads take the environment as it is when each is made.
    process.env['FLOWTOP_TEST_LINK_THREAD_FAULT'] = 'crash:3';
    const log: string[] = [];
    const link = new Link({ config: natsLinkConfig('', { nats: server.url, 'nats-prefix': 'rst' })!, host: 'h1', started: Date.now(), maxAgeMs: 3_600_000, log: (l) => log.push(l), restartStableMs: 4_000 });
    const restart = (n: number) => waitFor(`restart ${n}`, () => log.find((l) => l.includes(`(restart ${n})`)), 10_000);
    try {
      link.observe({ type: 'flow', flow: flowOf('a') });
      expect(await restart(1)).toContain('starting it again in 1 s');
      // The next thread publishes at once and dies at once: twice the pause.
      link.observe({ type: 'flow', flow: flowOf('b') });
      expect(await restart(2)).toContain('starting it again in 2 s');
      // The third runs longer than the 4 s that count as working before it dies: back to 1 s.
      await waitFor('the third thread connected', () => link.status.state === 'connected', 8_000);
      await new Promise((r) => setTimeout(r, 4_500));
      link.observe({ type: 'flow', flow: flowOf('c') });
      expect(await restart(3)).toMatch(/link thread 2 crashed on purpose .* after [4-9] s; starting it again in 1 s \(restart 3\)/);
    } finally {
      delete process.env['FLOWTOP_TEST_LINK_THREAD_FAULT'];
      await link.stop();
      await server.stop();
    }
  }, 40_000);
});

describe.skipIf(skip)('a NATS link thread that dies is started again', () => {
  let nats: NatsNet;
  let central: NatsTool;
  const cg = skip ? undefined : new TestCgroup();

  const hosts: FleetHost[] = [];

  async function startHost(name: string, fault: string): Promise<FleetHost> {
    const ns = new Netns();
    const address = nats.link(ns);
    const server = await greeter(ns, name, GREETER_PORT);
    const agent = await startAgent(ns, cg, ['--default', 'allow', '--timeout', '500ms', '--nats', `nats://${address}:${NATS_PORT}`, '--nats-insecure', '--host-name', name], undefined, { ...process.env, FLOWTOP_TEST_LINK_THREAD_FAULT: fault });
    const host = { name, ns, agent, server };
    hosts.push(host);
    return host;
  }

  beforeAll(async () => {
    buildAgent();
    nats = new NatsNet();
    await nats.start(NATS_PORT);
    central = await nats.client(`nats://127.0.0.1:${NATS_PORT}`);
    central.subscribe('flowtop.events.>');
  }, 60_000);

  afterAll(async () => {
    await central?.close();
    await stopHosts(hosts);
    await nats?.stopAll();
    cg?.delete();
    removeBuild();
  }, 60_000);

  const fleetStatus = (h: FleetHost): AgentStatus['fleet'] | undefined => {
    const s = readStatus(statusFileFor(h.agent.socket));
    return typeof s === 'object' ? s.fleet : undefined;
  };

  /** A program started now in `h`'s namespace that connects to the greeter when told (a line on its
   *  stdin); `go` resolves with its pid once it read the greeting (the agent decides locally whatever
   *  the link does). */
  function connection(h: FleetHost): { go(): Promise<number> } {
    const proc = spawnIn(h.ns, cg!, [process.execPath, '-e', `
      process.stdin.once('data', () => {
        const s = require('net').connect(${GREETER_PORT}, '127.0.0.1');
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('end', () => { console.log('read ' + got.trim()); process.exit(0); });
        s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
      });
    `]);
    const out = lines(proc);
    return {
      async go() {
        proc.stdin!.write('go\\n');
        expect(await out.next((l) => l.startsWith('read') || l.startsWith('error'), 5_000)).toBe(`read data for ${h.name}`);
        return proc.pid!;
      },
    };
  }
  const connectOnce = (h: FleetHost): Promise<number> => connection(h).go();

  const published = (h: FleetHost, pid: number): boolean => central.events(`flowtop.events.${h.name}`).some((m) => m['type'] === 'flow' && (m['flow'] as { pid?: number }).pid === pid);
  const statusText = (h: FleetHost): string => {
    const r = spawnSync(h.ns.enter[0]!, [...h.ns.enter.slice(1), process.execPath, join(buildAgent(), 'run-agent.mjs'), 'agent', '--status', '--socket', h.agent.socket], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    if (process.env['SHOW_AGENT_LOG']) console.log(r.stdout);
    return r.stdout;
  };

  it('publishes again after each death, after 1 s, 2 s, then 4 s, keeping what came meanwhile, and says so in the log and in --status', async () => {
    const h = await startHost('crashy', 'crash:3');
    await waitFor('the link connected', () => fleetStatus(h)?.state === 'connected', 15_000);
    const restartLine = (n: number) => h.agent.stderr.find((l) => l.includes('NATS link thread died') && l.includes(`(restart ${n})`));

    // Connections one after another, each published (by the thread running then, or by the next one
    // if that thread died first), until the third thread has died: each dies at its first publish.
    const flows: number[] = [];
    let later = connection(h);
    while (!restartLine(3)) {
      expect(flows.length, 'connections before the third restart').toBeLessThan(8);
      const pid = await later.go();
      flows.push(pid);
      later = connection(h);
      await waitFor(`flow ${flows.length} on the stream, or the third restart`, () => published(h, pid) || restartLine(3), 15_000);
    }
    // While no thread runs, a connection is decided locally as ever, and its events are kept for the
    // next thread: published once it runs. --status says when that is.
    const meanwhile = await later.go();
    const down = await waitFor('--status while the thread is down', () => {
      const f = fleetStatus(h);
      return f?.state === 'restarting' && f.restarts === 3 ? f : undefined;
    }, 3_000);
    expect(down.restartAt! - down.lastFailureAt!).toBe(4_000);
    const flow = await waitFor('the flow that came while the thread was down, on the stream', () => central.events(`flowtop.events.${h.name}`).find((m) => m['type'] === 'flow' && (m['flow'] as { pid?: number }).pid === meanwhile), 10_000);
    expect((flow['flow'] as { time: number }).time).toBeLessThan(down.restartAt!);
    // Every earlier flow reached the stream too, whichever thread published it.
    for (const pid of flows) await waitFor(`flow of pid ${pid} on the stream`, () => published(h, pid), 5_000);

    // Each death said, with a pause twice the last.
    expect(restartLine(1)).toMatch(/died \(Error: link thread 0 crashed on purpose \(FLOWTOP_TEST_LINK_THREAD_FAULT\)\) after \d+ s; starting it again in 1 s \(restart 1\); \d+ events not yet published wait for it; the agent keeps deciding locally/);
    expect(restartLine(2)).toMatch(/link thread 1 crashed on purpose.*starting it again in 2 s \(restart 2\)/);
    expect(restartLine(3)).toMatch(/link thread 2 crashed on purpose.*starting it again in 4 s \(restart 3\)/);

    // The fourth thread stays: later events are published, and no more restarts.
    const fourth = await connectOnce(h);
    await waitFor('a later flow on the stream', () => published(h, fourth), 5_000);
    await waitFor('--status connected after three restarts', () => {
      const f = fleetStatus(h);
      return f?.state === 'connected' && f.restarts === 3 ? f : undefined;
    }, 5_000);

    const status = statusText(h);
    expect(status).toMatch(/NATS {10}connected to n14232 as host crashy/);
    expect(status).toMatch(/NATS thread {3}restarted 3 times; last failure \d+ s ago: Error: link thread 2 crashed on purpose \(FLOWTOP_TEST_LINK_THREAD_FAULT\); events dropped while none ran 0/);
    // Counted across the threads, not only the running one's; and each event published once: a thread
    // is handed only the batches the stream has not acknowledged (a batch a thread published just
    // before dying unheard would be published again, and stored once by its Nats-Msg-Id).
    const publishedCount = Number(/published (\d+)/.exec(status)?.[1]);
    const events = central.events(`flowtop.events.${h.name}`).map((m) => JSON.stringify(m));
    expect(publishedCount).toBeGreaterThanOrEqual(flows.length + 2);
    expect(new Set(events).size).toBe(events.length);
    expect(h.agent.proc.exitCode).toBe(null);
  }, 90_000);
  it('a thread that hangs is ended once silent for 15 s and started again; events are published again', async () => {
    const h = await startHost('stuck', 'hang:1');
    await waitFor('the link connected', () => fleetStatus(h)?.state === 'connected', 15_000);
    const first = await connectOnce(h);
    await waitFor('the first flow on the stream', () => published(h, first), 5_000);
    // The thread now blocks for good (after its first publish; something else in the namespace may
    // have been that publish): no status, nothing published, until it is ended.
    const line = await waitFor('the silent thread ended', () => h.agent.stderr.find((l) => l.includes('NATS link thread died')), 25_000);
    expect(line).toMatch(/died \(silent for 1[5-7] s: ended\) after \d+ s; starting it again in 1 s \(restart 1\)/);
    const later = await connectOnce(h);
    await waitFor('a later flow on the stream', () => published(h, later), 8_000);
    await waitFor('--status connected after one restart', () => {
      const f = fleetStatus(h);
      return f?.state === 'connected' && f.restarts === 1 ? f : undefined;
    }, 5_000);
    expect(statusText(h)).toMatch(/NATS thread {3}restarted 1 time; last failure \d+ s ago: silent for 1[5-7] s: ended/);
  }, 60_000);
});
