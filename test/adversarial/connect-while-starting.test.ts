// Attack: connect as fast as possible while the agent starts, so that some connection slips between
// the agent saying it is ready and its queue really judging. Before "ready" the machine is not yet
// protected (the agent is starting, fail-open); from the moment the agent says "ready", every new
// connection must be judged. The agent blocks (reject) whatever it judges, so a connection attempted
// after "ready" that gets established was let through unjudged. Run with the /proc scan (--no-bpf) and
// with the BPF recorder, the two ways the agent starts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  Netns, TestCgroup, buildAgent, cleanupDir, hostRules, lines, removeBuild, skipUnlessCapable, startAgent, startServer,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const PORT = 7340;

/** Opens a non-blocking connection every millisecond until the file `ready` holds the agent's ready time
 *  and 300 connections were tried after it (at most 30 s), then prints the time (ms since the
 *  epoch, taken before connect()) of each it tried, and of each that got established. */
const FLOOD = `
import os, resource, select, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, ready_file = int(sys.argv[1]), sys.argv[2]
ready = None
after = 0
socks = []
print('start', flush=True)
t0 = time.time()
tries = []
while (ready is None or after < 300) and time.time() - t0 < 30:
    if ready is None and os.path.exists(ready_file):
        text = open(ready_file).read().strip()
        if text: ready = float(text)
    s = socket.socket(); s.setblocking(False)
    at = time.time() * 1000
    try: s.connect(('127.0.0.1', port))
    except OSError: pass
    socks.append((at, s))
    tries.append('%.1f' % at)
    if ready is not None and at >= ready: after += 1
    time.sleep(0.001)
time.sleep(0.5)
established = []
for at, s in socks:
    p = select.poll(); p.register(s, select.POLLOUT)
    if p.poll(0) and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        try: s.getpeername(); established.append('%.1f' % at)
        except OSError: pass
print('tries', ' '.join(tries), flush=True)
print('result', ' '.join(established), flush=True)
`;

describe.skipIf(skip)('adversarial: connect while the agent starts', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let server: ChildProcess;
  let before: string;

  beforeAll(async () => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    server = await startServer(ns, PORT);
  }, 60_000);

  afterAll(() => {
    server?.kill();
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it.each([
    ['the /proc scan', ['--no-bpf'], 7341],
    ['the BPF recorder', [], 7342],
  ])('with %s, no connection attempted after "ready" is established unjudged', async (name, extra, queue) => {
    const flags = ['--queue-num', String(queue), '--default', 'block', '--block-mode', 'reject', '--timeout', '200ms', ...extra];
    const counts = { tries: 0, bypasses: 0, crashes: 0 };
    let establishedBeforeReady = 0;
    const readyFile = join(mkdtempSync(join(tmpdir(), 'flowtop-flood-')), 'ready');
    const flood = spawn(ns.enter[0]!, [...ns.enter.slice(1), 'python3', '-c', FLOOD, String(PORT), readyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out = lines(flood);
    await out.next((l) => l === 'start');
    const agent = await startAgent(ns, cg, flags);
    try {
      writeFileSync(readyFile, String(agent.readyAt));
      const times = (line: string): number[] => line.split(' ').slice(1).filter(Boolean).map(Number);
      const tried = times(await out.next((l) => l.startsWith('tries'), 20_000));
      const established = times(await out.next((l) => l.startsWith('result'), 20_000));
      counts.tries = tried.filter((t) => t >= agent.readyAt).length;
      const slipped = established.filter((t) => t >= agent.readyAt);
      establishedBeforeReady = established.length - slipped.length;
      counts.bypasses = slipped.length;
      if (slipped.length > 0) console.log(`${name}: ${slipped.length} connections established after ready (ready at ${agent.readyAt}; first at ${slipped[0]})`);
    } catch (error) {
      counts.crashes++;
      throw error;
    } finally {
      await agent.stop();
      cleanupDir(agent.dir);
      rmSync(dirname(readyFile), { recursive: true, force: true });
    }
    reportAttack(`connect-while-starting (${name})`, counts);
    // The flood did reach the server before the agent was ready: an established connection is seen.
    expect(establishedBeforeReady).toBeGreaterThan(0);
    expect(counts.tries).toBeGreaterThanOrEqual(300);
    expect(counts.bypasses).toBe(0);
    expect(counts.crashes).toBe(0);
  }, 60_000);
});
