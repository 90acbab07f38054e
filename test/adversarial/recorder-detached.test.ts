// Two agents on one cgroup: a second agent's start removed the first one's live recorder programs as if
// they were left by a crash (removeStalePrograms with nothing spared, as that start ran it; a second
// agent is now refused, but anyone with CAP_BPF can still detach them). The first
// agent kept saying `bpf-cookie` while its connects went unrecorded and owners came from /proc scans,
// which name whoever holds the socket: a child that connected and exited was reported as its parent.
// The agent must notice, say so, and get its recorder back rather than misattribute.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { removeStalePrograms } from '../../src/native/linux/bpf.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, hostRules, lines, removeBuild, skipUnlessCapable, spawnIn, startAgent,
  startServer, waitFor, type RunningAgent,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** python3: the parent makes an inheritable socket and forks; the child starts a connect on it and
 *  exits at once; the parent keeps the socket. Prints "LOCALPORT CHILDPID PARENTPID". */
const forkConnectExit = (port: number): string[] => [PYTHON, '-c', `
import os, socket, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.setblocking(False); os.set_inheritable(s.fileno(), True)
pid = os.fork()
if pid == 0:
    try: s.connect(('127.0.0.1', ${port}))
    except BlockingIOError: pass
    os._exit(0)
os.waitpid(pid, 0)
print(s.getsockname()[1], pid, os.getpid(), flush=True)
time.sleep(3)
`];

function status(socket: string): { attribution: string; attributionDetail: string } | undefined {
  try {
    return JSON.parse(readFileSync(`${socket}.status.json`, 'utf8'));
  } catch {
    return undefined;
  }
}

describe.skipIf(skip)('adversarial: another agent detaches the recorder', () => {
  const PORT = 7990;
  let ns: Netns;
  let cg: TestCgroup;
  let server: ChildProcess;
  let agent: RunningAgent;
  let before: string;

  beforeAll(async () => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    server = await startServer(ns, PORT);
    agent = await startAgent(ns, cg, ['--queue-num', '7991', '--timeout', '1s']);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (agent) cleanupDir(agent.dir);
    server?.kill();
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('notices its programs were detached, says so, and never gives a child\'s connection to the parent that kept the socket', async () => {
    const client = new TestClient(agent.socket);
    await client.subscribe();
    try {
      // what a second agent's start did to the first one's live programs (a sweep that spared none;
      // anyone with CAP_BPF can still do the same)
      const fd = openSync(cg.path, 'r');
      let removed: number;
      try {
        removed = removeStalePrograms(fd, new Set());
      } finally {
        closeSync(fd);
      }
      expect(removed).toBe(6); // connect4/6, sendmsg4/6, sock_create, and sock_ops (close counters)
      const said = await waitFor('the agent to say its recorder was detached', () => status(agent.socket)?.attributionDetail.includes('detached') && status(agent.socket), 3000).catch(() => undefined);

      const tries = 30;
      let misattributed = 0;
      for (let done = 0; done < tries; done += 10) {
        await Promise.all(Array.from({ length: 10 }, async () => {
          const child = spawnIn(ns, cg, forkConnectExit(PORT));
          const [local, childPid, parentPid] = (await lines(child).next((l) => /^\d+ \d+ \d+$/.test(l), 30_000)).split(' ').map(Number);
          const flow = await waitFor('the flow', () => client.flows((f) => f.local.port === local)[0], 5000);
          // the child connected; the parent never did
          if (flow.pid === parentPid) misattributed++;
          else if (flow.pid !== undefined) expect(flow.pid).toBe(childPid);
        }));
      }
      const crashes = agent.proc.exitCode !== null || agent.proc.signalCode !== null ? 1 : 0;
      // saying nothing while the recorder is gone is itself a bypass: the user is told `bpf-cookie`
      const bypasses = misattributed + (said ? 0 : 1);
      reportAttack('recorder-detached (a second agent removed the first one\'s live programs; fork, child connects and exits)', { tries: tries + 1, bypasses, crashes });
      expect(said?.attributionDetail).toMatch(/detached by someone else .* attached again/);
      expect(said?.attribution).toBe('bpf-cookie');
      expect(agent.stderr.some((l) => /recorder's programs .* were detached/.test(l))).toBe(true);
      expect(bypasses).toBe(0);
      expect(crashes).toBe(0);
    } finally {
      client.close();
    }
  }, 120_000);
});
