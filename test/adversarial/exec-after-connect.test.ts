// Exec after connect: a program starts a connection, then replaces itself (or a child that connected
// replaces itself) with a program an identity rule allows. The flow's identity is the program that was
// running when it connected; an identity read from /proc after the exec belongs to someone else and
// must neither match the allow rule nor be shown `secure`.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage, Verdict } from '../../src/protocol/messages.js';
import { LinuxResolver } from '../../src/native/linux/process.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, hostRules, lines, removeBuild, skipUnlessCapable, spawnIn, startAgent,
  waitFor, type RunningAgent,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
/** The interpreter itself, not a version manager's shim (a shell script that starts it slowly). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
type RuleChanged = Extract<ExtensionMessage, { type: 'rule-changed' }>;

/** A TCP server in the namespace that prints "conn PORT" for each accepted connection and
 *  "data PORT TEXT" for each line it receives on it. */
function startLoggingServer(ns: Netns, port: number): { child: ChildProcess; out: ReturnType<typeof lines> } {
  const code = `
    const net = require('net');
    net.createServer((c) => {
      const port = c.remotePort;
      console.log('conn', port);
      c.on('data', (d) => { for (const l of d.toString().split('\\n')) if (l) console.log('data', port, l); });
      c.on('error', () => {});
    }).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, out: lines(child) };
}

/** python3: bind, print the local port, start a non-blocking connect, make the socket inheritable and
 *  exec /bin/sleep — the socket's connection completes (or not) under sleep. */
const execInPlace = (port: number): string[] => [PYTHON, '-c', `
import os, socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)
s.setblocking(False)
try: s.connect(('127.0.0.1', ${port}))
except BlockingIOError: pass
os.set_inheritable(s.fileno(), True)
os.execv('/bin/sleep', ['sleep', '4'])
`];

/** python3: bind, print the local port, fork; the child starts a non-blocking connect on the shared
 *  socket and execs /bin/sleep; the parent waits until the socket connects and sends its payload. */
const childConnectsThenExecs = (port: number): string[] => [PYTHON, '-c', `
import os, select, socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); local = s.getsockname()[1]; print(local, flush=True)
s.setblocking(False); os.set_inheritable(s.fileno(), True)
r, w = os.pipe()  # close-on-exec: the parent's read ends when the child execs
if os.fork() == 0:
    os.close(r)
    try: s.connect(('127.0.0.1', ${port}))
    except BlockingIOError: pass
    os.execv('/bin/sleep', ['sleep', '4'])
os.close(w); os.read(r, 1)
_, ready, _ = select.select([], [s], [], 3)
if ready and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
    try: s.sendall(b'PAYLOAD %d\\n' % local)
    except OSError: pass
os._exit(0)
`];

describe.skipIf(skip)('adversarial: exec after connect borrows another program\'s identity', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let before: string;
  const agents: RunningAgent[] = [];
  const children: ChildProcess[] = [];

  beforeAll(() => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
  }, 60_000);

  // One agent at a time: a second one would replace the first's recorder.
  afterEach(async () => {
    for (const a of agents.splice(0)) {
      await a.stop();
      cleanupDir(a.dir);
    }
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  afterAll(async () => {
    // the shared agent, when the test that stops it did not run
    const shared = await allowingSleep?.catch(() => undefined);
    if (shared && shared.agent.proc.exitCode === null) {
      await shared.agent.stop();
      cleanupDir(shared.agent.dir);
    }
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  interface AllowingAgent {
    agent: RunningAgent;
    /** Subscribed from the start: sees each flow and its verdict. */
    watcher: TestClient;
    crashed: () => boolean;
  }

  /** An agent with `--default block` and a rule allowing coreutils' /bin/sleep to connect to each port. */
  async function agentAllowingSleep(ports: number[], queueNum: number): Promise<AllowingAgent> {
    const agent = await startAgent(ns, cg, ['--queue-num', String(queueNum), '--default', 'block', '--timeout', '1s', '--block-mode', 'reject'], mkdtempSync(join(tmpdir(), 'flowtop-agent-')));
    const watcher = new TestClient(agent.socket);
    await watcher.subscribe();
    for (const port of ports) {
      watcher.send({ type: 'rule-add', rule: { action: 'allow', identity: { kind: 'package', value: '/bin/sleep', package: 'coreutils' }, protocol: 'tcp', endpoint: { port }, duration: { kind: 'always' } }, ref: `sleep-${port}` });
      await watcher.waitFor<RuleChanged>('the sleep rule', (m) => m.type === 'rule-changed' && m.ref === `sleep-${port}`);
    }
    return { agent, watcher, crashed: () => agent.proc.exitCode !== null || agent.proc.signalCode !== null };
  }

  /** The verdict on the flow from `localPort`, once there is one. */
  function verdictFor(watcher: TestClient, localPort: number): Verdict | undefined {
    const ids = new Set(watcher.flows((f) => f.local.port === localPort).map((f) => f.id));
    const m = watcher.messages.find((x) => x.type === 'verdict' && ids.has(x.id));
    return m?.type === 'verdict' ? m.verdict : undefined;
  }

  /** Runs `tries` attackers, `parallel` at a time; resolves with each one's local port once every
   *  connection has been judged and whatever was let through has reached the server's log. */
  async function runAttackers(argv: string[], tries: number, parallel: number, on: AllowingAgent, server: ReturnType<typeof lines>, logged: 'conn' | 'data'): Promise<number[]> {
    const ports: number[] = [];
    for (let done = 0; done < tries; done += parallel) {
      const batch = await Promise.all(Array.from({ length: Math.min(parallel, tries - done) }, async () => {
        const child = spawnIn(ns, cg, argv);
        children.push(child);
        const exited = new Promise((r) => child.once('exit', r));
        return { port: Number(await lines(child).next((l) => /^\d+$/.test(l), 30_000)), exited };
      }));
      ports.push(...batch.map((b) => b.port));
      // every connection of the batch judged (by the rule, or the 1 s deadline) before the next
      await waitFor('a verdict on every connection of the batch', () => batch.every((b) => verdictFor(on.watcher, b.port)), 15_000)
        .catch(() => undefined); // one judged out of the watcher's sight still shows in the server's log
      // A sender is done (sent its payload or gave up) when it exits; the program exec'd in place never sends.
      if (logged === 'data') await Promise.all(batch.map((b) => b.exited));
      // What was let through shows in the server's log a moment later: wait for it, or a bypass could go unseen.
      const allowed = batch.filter((b) => verdictFor(on.watcher, b.port)?.action !== 'block');
      await waitFor('the server to log what was let through', () => allowed.every((b) => server.all.some((l) => l.startsWith(`${logged} ${b.port}`))), 5_000)
        .catch(() => undefined);
    }
    return ports;
  }

  // One agent for both attacks on the allow rule (a rule for each one's port), stopped after the second.
  let allowingSleep: Promise<AllowingAgent> | undefined;
  function sharedAgentAllowingSleep(): Promise<AllowingAgent> {
    allowingSleep ??= agentAllowingSleep([7950, 7952], 7960);
    return allowingSleep;
  }

  it('exec in place after a non-blocking connect never rides on the exec\'d program\'s allow rule', async () => {
    const PORT = 7950;
    const server = startLoggingServer(ns, PORT);
    children.push(server.child);
    await server.out.next((l) => l === 'ready');
    const on = await sharedAgentAllowingSleep();
    const ports = await runAttackers(execInPlace(PORT), 60, 20, on, server.out, 'conn');
    const accepted = new Set(server.out.all.filter((l) => l.startsWith('conn ')).map((l) => Number(l.split(' ')[1])));
    const bypasses = ports.filter((p) => accepted.has(p)).length;
    const crashes = on.crashed() ? 1 : 0;
    reportAttack('exec-after-connect (exec in place, allow rule for the exec\'d program, --default block)', { tries: ports.length, bypasses, crashes });
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 120_000);

  it('a child that connects and execs the allowed program does not carry its parent\'s payload through', async () => {
    const PORT = 7952;
    const server = startLoggingServer(ns, PORT);
    children.push(server.child);
    await server.out.next((l) => l === 'ready');
    const on = await sharedAgentAllowingSleep();
    agents.push(on.agent); // stopped after this test
    const ports = await runAttackers(childConnectsThenExecs(PORT), 60, 20, on, server.out, 'data');
    const delivered = new Set(server.out.all.filter((l) => l.startsWith('data ')).map((l) => Number(l.split(' ')[1])));
    const bypasses = ports.filter((p) => delivered.has(p)).length;
    const crashes = on.crashed() ? 1 : 0;
    reportAttack('exec-after-connect (child connects and execs, parent sends, --default block)', { tries: ports.length, bypasses, crashes });
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 120_000);

  it('without any rule, a flow is never shown secure as the program exec\'d after the connect', async () => {
    const PORT = 7954;
    const server = startLoggingServer(ns, PORT);
    children.push(server.child);
    await server.out.next((l) => l === 'ready');
    const agent = await startAgent(ns, cg, ['--queue-num', '7980', '--timeout', '1s'], mkdtempSync(join(tmpdir(), 'flowtop-agent-')));
    agents.push(agent);
    const client = new TestClient(agent.socket);
    await client.subscribe();
    // The TUI's own route: the flow's token resolved by the Linux resolver while the program still runs.
    const resolver = new LinuxResolver();
    const tries = 40;
    let bypasses = 0;
    let seen = 0;
    try {
      for (let done = 0; done < tries; done += 10) {
        await Promise.all(Array.from({ length: 10 }, async () => {
          const child = spawnIn(ns, cg, execInPlace(PORT));
          children.push(child);
          const local = Number(await lines(child).next((l) => /^\d+$/.test(l), 30_000));
          const flow = await waitFor('the flow', () => client.flows((f) => f.local.port === local)[0], 5000);
          seen++;
          if (!flow.token) return;
          const a = resolver.resolveOne(Buffer.from(flow.token, 'base64'));
          if (a.trust === 'secure' && /sleep$/.test(a.path ?? '')) bypasses++;
        }));
      }
    } finally {
      client.close();
    }
    const crashes = agent.proc.exitCode !== null || agent.proc.signalCode !== null ? 1 : 0;
    reportAttack('exec-after-connect (no rule: shown secure as the exec\'d program)', { tries: seen, bypasses, crashes });
    expect(seen).toBe(tries);
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 120_000);
});
