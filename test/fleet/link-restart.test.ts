// The agent's NATS link thread dies (a bug stands in: the test-only FLOWTOP_TEST_LINK_THREAD_CRASHES
// makes each of its first three threads throw right after its first acknowledged publish) and the
// agent starts it again, 1 s, 2 s and then 4 s later, keeping what came meanwhile: events are published again
// afterwards, the log and `flowtop agent --status` say so, and the agent decides locally throughout.
// A real agent in a namespace, a real nats-server in another, joined by a veth pair.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Netns, TestCgroup, buildAgent, cleanupDir, lines, removeBuild, spawnIn, startAgent, waitFor, type RunningAgent } from '../agent/helpers.js';
import { readStatus, type AgentStatus } from '../../src/agent/status.js';
import { statusFileFor } from '../../src/agent/socket-files.js';
import { NatsNet, killed, skipUnlessFleetCapable, type NatsTool } from './helpers.js';
import { restartDelay } from '../../src/fleet/agent-link.js';

const skip = skipUnlessFleetCapable();
const NATS_PORT = 14232;
const GREETER_PORT = 8301;

describe('the pause before a link thread is started again', () => {
  it('is 1 s, doubling to at most 30 s: a thread that dies at once cannot spin', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map(restartDelay)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });
});

describe.skipIf(skip)('a NATS link thread that dies is started again', () => {
  let nats: NatsNet;
  let central: NatsTool;
  let ns: Netns;
  let agent: RunningAgent;
  let greeter: ChildProcess;
  const cg = skip ? undefined : new TestCgroup();

  beforeAll(async () => {
    buildAgent();
    nats = new NatsNet();
    await nats.start(NATS_PORT);
    central = await nats.client(`nats://127.0.0.1:${NATS_PORT}`);
    central.subscribe('flowtop.events.>');
    ns = new Netns();
    const address = nats.link(ns);
    const code = `require('net').createServer(c=>{c.on('error',()=>{});c.end('hello\\n')}).listen(${GREETER_PORT},'127.0.0.1',()=>console.log('ready'));`;
    greeter = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await lines(greeter).next((l) => l === 'ready');
    agent = await startAgent(ns, cg, ['--default', 'allow', '--timeout', '500ms', '--nats', `nats://${address}:${NATS_PORT}`, '--nats-insecure', '--host-name', 'crashy'], undefined, { ...process.env, FLOWTOP_TEST_LINK_THREAD_CRASHES: '3' });
  }, 60_000);

  afterAll(async () => {
    if (process.env['SHOW_AGENT_LOG']) console.log(agent?.stderr.join('\n'));
    await central?.close();
    if (greeter) await killed(greeter);
    await agent?.stop();
    ns?.delete();
    if (agent) cleanupDir(agent.dir);
    await nats?.stopAll();
    cg?.delete();
    removeBuild();
  }, 60_000);

  const fleetStatus = (): AgentStatus['fleet'] | undefined => {
    const s = readStatus(statusFileFor(agent.socket));
    return typeof s === 'object' ? s.fleet : undefined;
  };

  /** A program started now that connects to the greeter when told (a line on its stdin); `go` resolves
   *  with its pid once it read the greeting (the agent decides locally whatever the link does). */
  function connection(): { go(): Promise<number> } {
    const proc = spawnIn(ns, cg!, [process.execPath, '-e', `
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
        proc.stdin!.write('go\n');
        expect(await out.next((l) => l.startsWith('read') || l.startsWith('error'), 5_000)).toBe('read hello');
        return proc.pid!;
      },
    };
  }
  const connectOnce = (): Promise<number> => connection().go();

  const published = (pid: number): boolean => central.events('flowtop.events.crashy').some((m) => m['type'] === 'flow' && (m['flow'] as { pid?: number }).pid === pid);

  it('publishes again after each death, after 1 s, 2 s, then 4 s, keeping what came meanwhile, and says so in the log and in --status', async () => {
    await waitFor('the link connected', () => fleetStatus()?.state === 'connected', 15_000);
    const restartLine = (n: number) => agent.stderr.find((l) => l.includes('NATS link thread died') && l.includes(`(restart ${n})`));

    // Connections one after another, each published (by the thread running then, or by the next one
    // if that thread died first), until the third thread has died: each dies at its first publish.
    const flows: number[] = [];
    let later = connection();
    while (!restartLine(3)) {
      expect(flows.length, 'connections before the third restart').toBeLessThan(8);
      const pid = await later.go();
      flows.push(pid);
      later = connection();
      await waitFor(`flow ${flows.length} on the stream, or the third restart`, () => published(pid) || restartLine(3), 15_000);
    }
    // While no thread runs, a connection is decided locally as ever, and its events are kept for the
    // next thread: published once it runs. --status says when that is.
    const meanwhile = await later.go();
    const down = await waitFor('--status while the thread is down', () => {
      const f = fleetStatus();
      return f?.state === 'restarting' && f.restarts === 3 ? f : undefined;
    }, 3_000);
    expect(down.restartAt! - down.lastFailureAt!).toBe(4_000);
    const flow = await waitFor('the flow that came while the thread was down, on the stream', () => central.events('flowtop.events.crashy').find((m) => m['type'] === 'flow' && (m['flow'] as { pid?: number }).pid === meanwhile), 10_000);
    expect((flow['flow'] as { time: number }).time).toBeLessThan(down.restartAt!);
    // Every earlier flow reached the stream too, whichever thread published it.
    for (const pid of flows) await waitFor(`flow of pid ${pid} on the stream`, () => published(pid), 5_000);

    // Each death said, with a pause twice the last.
    expect(restartLine(1)).toMatch(/died \(Error: link thread 0 crashed on purpose \(FLOWTOP_TEST_LINK_THREAD_CRASHES\)\) after \d+ s; starting it again in 1 s \(restart 1\); \d+ events not yet published wait for it; the agent keeps deciding locally/);
    expect(restartLine(2)).toMatch(/link thread 1 crashed on purpose.*starting it again in 2 s \(restart 2\)/);
    expect(restartLine(3)).toMatch(/link thread 2 crashed on purpose.*starting it again in 4 s \(restart 3\)/);

    // The fourth thread stays: later events are published, and no more restarts.
    const fourth = await connectOnce();
    await waitFor('a later flow on the stream', () => published(fourth), 5_000);
    await waitFor('--status connected after three restarts', () => {
      const f = fleetStatus();
      return f?.state === 'connected' && f.restarts === 3 ? f : undefined;
    }, 5_000);

    const status = spawnSync(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(buildAgent(), 'run-agent.mjs'), 'agent', '--status', '--socket', agent.socket], { encoding: 'utf8', timeout: 20_000 });
    expect(status.status, status.stderr).toBe(0);
    if (process.env['SHOW_AGENT_LOG']) console.log(status.stdout);
    expect(status.stdout).toMatch(/NATS {10}connected to n14232 as host crashy/);
    expect(status.stdout).toMatch(/NATS thread {3}restarted 3 times; last failure \d+ s ago: Error: link thread 2 crashed on purpose \(FLOWTOP_TEST_LINK_THREAD_CRASHES\); events dropped while none ran 0/);
    // Counted across the threads, not only the running one's; and each event published once: a thread
    // is handed only the batches the stream has not acknowledged (a batch a thread published just
    // before dying unheard would be published again, and stored once by its Nats-Msg-Id).
    const publishedCount = Number(/published (\d+)/.exec(status.stdout)?.[1]);
    const events = central.events('flowtop.events.crashy').map((m) => JSON.stringify(m));
    expect(publishedCount).toBeGreaterThanOrEqual(flows.length + 2);
    expect(new Set(events).size).toBe(events.length);
    expect(agent.proc.exitCode).toBe(null);
  }, 90_000);
});
