// Attack: clients flood the agent. (1) A peer outside the flowtop group, on a loosened (0666) socket,
// must get nothing but a refusal — no hello naming the host and mode. (2) Sixty authorised clients each
// send tens of thousands of requests and never read the answers: the agent must not queue answers
// without bound (it held 1.1 GB for 60 clients against 60 × 8 MiB of nominal queue). Its memory
// growth is measured from its resident set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import net from 'node:net';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, hostRules, removeBuild, skipUnlessCapable, startAgent,
  type RunningAgent,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const NOBODY = 65534;
const CLIENTS = 60;
/** Requests per client: ~2 MB each, answered by ~3.6 MB of short errors each if all were queued. */
const REQUESTS = 30_000;
/** What the agent may grow by: the bound on all clients' queues (64 MiB) with room for the heap around it. */
const GROWTH_LIMIT_MB = 120;

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

describe.skipIf(skip)('adversarial: clients flooding the agent', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let before: string;
  let agent: RunningAgent;

  beforeAll(async () => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    agent = await startAgent(ns, cg, ['--queue-num', '7740']);
  }, 60_000);

  afterAll(async () => {
    expect(await agent?.stop()).toBe(0);
    cleanupDir(agent?.dir ?? '/nonexistent');
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('an unauthorised peer is sent one refusal and no hello', async () => {
    chmodSync(agent.socket, 0o666);
    let tries = 0;
    let bypasses = 0;
    for (let i = 0; i < 5; i++) {
      tries++;
      const child = spawn('/usr/bin/python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
data = b''
s.settimeout(3)
try:
    while True:
        c = s.recv(65536)
        if not c: break
        data += c
except OSError: pass
sys.stdout.write(data.decode('utf8', 'replace'))
`, agent.socket], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => child.once('exit', r));
      const types = out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { type: string; code?: string }));
      if (types.length !== 1 || types[0]!.type !== 'error' || types[0]!.code !== 'not-authorised') bypasses++;
    }
    chmodSync(agent.socket, 0o660);
    reportAttack('unauthorised-peer-hello', { tries, bypasses, crashes: agent.proc.exitCode === null ? 0 : 1 });
    expect(bypasses).toBe(0);
  }, 60_000);

  it(`${CLIENTS} clients sending requests without reading keep the agent's memory bounded`, async () => {
    const pid = agent.proc.pid!;
    const baseline = rssMb(pid);
    // a verdict for a flow that does not exist: answered by a short error, never counted as misuse
    const requests = Buffer.from(Array.from({ length: REQUESTS }, (_, i) => `{"type":"verdict","id":"nope${i}","action":"allow","remember":"once"}\n`).join(''));
    const sockets: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const s = net.connect(agent.socket);
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      s.write('{"type":"subscribe","protocol":1,"client":{"name":"flood","version":"1"}}\n');
      s.write(requests);
      s.pause(); // never read
      sockets.push(s);
    }
    // Let the agent take in as much as it will.
    let peak = baseline;
    const started = Date.now();
    while (Date.now() - started < 8000) {
      if (agent.proc.exitCode !== null) break;
      peak = Math.max(peak, rssMb(pid));
      await new Promise((r) => setTimeout(r, 200));
    }
    const crashed = agent.proc.exitCode !== null;
    // The agent still serves a well-behaved client meanwhile.
    let served = false;
    if (!crashed) {
      const good = new TestClient(agent.socket);
      served = await good.subscribe().then(async () => {
        good.send({ type: 'rules-list', ref: 'alive' });
        return good.waitFor('an answer', (m) => m.type === 'rules' && m.ref === 'alive', 10_000).then(() => true);
      }).catch(() => false);
      good.close();
    }
    for (const s of sockets) s.destroy();
    const growth = peak - baseline;
    process.stderr.write(`client-flood: agent RSS ${baseline.toFixed(0)} MB → peak ${peak.toFixed(0)} MB (+${growth.toFixed(0)} MB) with ${CLIENTS} clients × ${REQUESTS} unread requests\n`);
    reportAttack('client-request-flood', { tries: CLIENTS, bypasses: growth > GROWTH_LIMIT_MB || !served ? 1 : 0, crashes: crashed ? 1 : 0 });
    expect(crashed).toBe(false);
    expect(served).toBe(true);
    expect(growth).toBeLessThan(GROWTH_LIMIT_MB);
  }, 90_000);
});
