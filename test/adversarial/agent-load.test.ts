// Attack (ordinary load, really): ~1,600 live TCP flows each sending a byte every 0.3 s while a client
// watches, then more clients subscribe, and a rule list past 64 KiB is asked for. A poll's counters
// and the snapshot's counters are far over one line: they must reach clients split across lines, and
// nothing may throw the agent over (it used to exit on the next subscribe, leaving its chains, BPF
// programs and socket).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { MAX_LINE_BYTES } from '../../src/protocol/messages.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, hostRules, lines, removeBuild, skipUnlessCapable, startAgent,
  startServer, waitFor, type RunningAgent,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const FLOWS = 1600;
const PORT = 7730;
const SUBSCRIBES = 3;

/** Opens `count` connections to the port and sends one byte on each every 0.3 s until stdin closes. */
const TRICKLE = `
import resource, select, socket, sys, time
count, port = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (count + 256, count + 256))
socks = []
while len(socks) < count:
    batch = []
    for i in range(min(100, count - len(socks))):
        s = socket.socket(); s.setblocking(False)
        try: s.connect(('127.0.0.1', port))
        except BlockingIOError: pass
        batch.append(s)
    poller = select.poll()
    for s in batch: poller.register(s, select.POLLOUT)
    waiting, deadline = {s.fileno() for s in batch}, time.time() + 60
    while waiting and time.time() < deadline:
        for fd, _ in poller.poll(1000):
            waiting.discard(fd); poller.unregister(fd)
    socks.extend(batch)
print('opened', flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 0.3)
    if r and not sys.stdin.readline(): break
    for s in socks:
        try: s.send(b'x')
        except OSError: pass
`;

describe.skipIf(skip)('adversarial: the agent under 1,600 trickling flows', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let before: string;
  let agent: RunningAgent;
  let server: ChildProcess;

  beforeAll(async () => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    server = await startServer(ns, PORT);
    agent = await startAgent(ns, cg, ['--queue-num', '7730']);
  }, 60_000);

  afterAll(async () => {
    expect(await agent?.stop()).toBe(0);
    cleanupDir(agent?.dir ?? '/nonexistent');
    server?.kill();
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('counters reach clients split across lines, late subscribers get whole snapshots, and the agent lives', async () => {
    let tries = 0;
    let bypasses = 0;
    let crashes = 0;
    const reasons: string[] = [];
    const watcher = new TestClient(agent.socket);
    await watcher.subscribe();
    // decided by rule, not held for a person while the client watches
    watcher.send({ type: 'rule-add', rule: { action: 'allow', endpoint: { address: '127.0.0.1', port: PORT }, duration: { kind: 'always' } }, ref: 'port' });
    await watcher.waitFor('the port rule', (m) => m.type === 'rule-changed' && m.rule.endpoint?.port === PORT);
    const trickle = spawn(ns.enter[0]!, [...ns.enter.slice(1), '/usr/bin/python3', '-c', TRICKLE, String(FLOWS), String(PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await lines(trickle).next((l) => l === 'opened', 120_000);
      await waitFor('the flows', () => watcher.flows((f) => f.remote.port === PORT).length >= FLOWS, 30_000);
      const ids = new Set(watcher.flows((f) => f.remote.port === PORT).map((f) => f.id));
      // A poll's counters for every flow: more than one line holds, so they come in parts.
      const counted = new Set<string>();
      await waitFor('counters for every flow', () => {
        for (const m of watcher.messages) if (m.type === 'bytes') for (const c of m.counters) if (ids.has(c.id) && c.tx > 0) counted.add(c.id);
        return counted.size >= FLOWS * 0.95;
      }, 30_000).catch(() => {
        bypasses++;
        reasons.push(`counters reached the watcher for ${counted.size} of ${FLOWS} flows`);
      });
      tries++;
      for (let i = 0; i < SUBSCRIBES; i++) {
        tries++;
        if (agent.proc.exitCode !== null) break;
        const late = new TestClient(agent.socket);
        await late.subscribe().catch(() => undefined);
        try {
          await late.waitFor('the snapshot to end with the rule list', (m) => m.type === 'rules' && m.continues === undefined, 20_000);
          const snapshotCounters = late.messages.flatMap((m) => (m.type === 'bytes' ? m.counters : []));
          const flows = late.flows((f) => f.remote.port === PORT);
          if (flows.length < FLOWS * 0.95 || snapshotCounters.length < FLOWS * 0.9) {
            bypasses++;
            reasons.push(`subscribe ${i}: snapshot had ${flows.length} flows and ${snapshotCounters.length} counters`);
          }
        } catch (error) {
          bypasses++;
          reasons.push(`subscribe ${i}: ${(error as Error).message}`);
        }
        late.close();
        await new Promise((r) => setTimeout(r, 700)); // a poll in between
        if (agent.proc.exitCode !== null) crashes++;
      }
      // a rule list far over one line
      tries++;
      if (agent.proc.exitCode !== null) throw new Error('the agent is gone');
      for (let i = 0; i < 120; i++) {
        watcher.send({ type: 'rule-add', rule: { action: 'allow', endpoint: { host: `h${i}.example` }, duration: { kind: 'always' }, note: 'n'.repeat(1000) }, ref: `a${i}` });
      }
      await waitFor('the rules added', () => watcher.messages.filter((m) => m.type === 'rule-changed' && m.rule.endpoint?.host?.endsWith('.example')).length === 120, 30_000);
      watcher.send({ type: 'rules-list', ref: 'big' });
      const parts = await waitFor('the whole list', () => {
        const got = watcher.messages.filter((m): m is Extract<ExtensionMessage, { type: 'rules' }> => m.type === 'rules' && m.ref === 'big');
        return got.length > 0 && got[got.length - 1]!.continues === undefined ? got : undefined;
      }, 20_000).catch(() => []);
      if (parts.flatMap((p) => p.rules).length !== 121 || parts.some((p) => Buffer.byteLength(JSON.stringify(p)) > MAX_LINE_BYTES)) {
        bypasses++;
        reasons.push(`rules-list: ${parts.length} parts, ${parts.flatMap((p) => p.rules).length} rules`);
      }
    } catch (error) {
      if (tries === 0) throw error; // the load never came up: a broken test, not a result
      bypasses++;
      reasons.push((error as Error).message);
    } finally {
      trickle.stdin?.end();
      await new Promise((r) => trickle.once('exit', r));
    }
    if (agent.proc.exitCode !== null) crashes++;
    const complaints = agent.stderr.filter((l) => /encoded message is \d+ bytes|BUG:/.test(l));
    if (complaints.length > 0) process.stderr.write(`agent-load: the agent said:\n${complaints.slice(0, 5).join('\n')}\n`);
    if (reasons.length > 0) process.stderr.write(`agent-load: ${reasons.join('; ')}\n`);
    reportAttack('agent-load-1600-flows', { tries, bypasses, crashes });
    watcher.close();
    expect(complaints).toEqual([]);
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 240_000);
});
