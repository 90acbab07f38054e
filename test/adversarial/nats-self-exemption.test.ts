// Riding the agent's own exemption: with --nats the agent lets its own connections to NATS through its
// firewall (they would otherwise be held by itself), recognising them by the verified owner being its
// very process instance. Other programs try to pass the same way: connecting to the same NATS server
// and port, running the agent's own executable under the agent's name, marking their socket, and
// connecting while the agent itself reconnects. Every one must be held and judged (--default block
// with no one answering: refused at the deadline); the agent itself must get through.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readStatus } from '../../src/agent/status.js';
import { statusFileFor } from '../../src/agent/socket-files.js';
import { Netns, TestCgroup, buildAgent, cleanupDir, lines, removeBuild, spawnIn, startAgent, waitFor, type RunningAgent } from '../agent/helpers.js';
import { killed, skipUnlessFleetCapable } from '../fleet/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessFleetCapable();
const PORT = 14322;
const TIMEOUT_MS = 3000;
const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p)) ?? 'nats-server';
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Connects to 127.0.0.1:PORT (optionally with SO_MARK set) and prints "connected" or "refused". */
const pythonConnect = (mark?: number): string[] => [PYTHON, '-c', `
import socket
s = socket.socket()
${mark !== undefined ? `s.setsockopt(socket.SOL_SOCKET, 36, ${mark})` : ''}
s.settimeout(${(TIMEOUT_MS + 3000) / 1000})
try:
    s.connect(('127.0.0.1', ${PORT})); print('connected', flush=True)
except Exception as e:
    print('refused', type(e).__name__, flush=True)
`];

describe.skipIf(skip)('adversarial: riding the agent\'s NATS exemption', () => {
  const ns = skip ? undefined : new Netns();
  const cg = skip ? undefined : new TestCgroup();
  let agent: RunningAgent;
  let nats: ChildProcess | undefined;

  const startNats = async (): Promise<ChildProcess> => {
    const proc = spawn(ns!.enter[0]!, [...ns!.enter.slice(1), NATS_SERVER, '-a', '127.0.0.1', '-p', String(PORT)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor(`nats-server (${log})`, () => log.includes('Server is ready'), 10_000);
    return proc;
  };
  const status = () => {
    const s = readStatus(statusFileFor(agent.socket));
    return typeof s === 'object' ? s : undefined;
  };

  beforeAll(async () => {
    buildAgent();
    // The agent first, NATS second: its first connection is made through its own firewall.
    agent = await startAgent(ns!, cg, ['--default', 'block', '--timeout', `${TIMEOUT_MS}ms`, '--nats', `nats://127.0.0.1:${PORT}`]);
    nats = await startNats();
  }, 60_000);

  afterAll(async () => {
    if (nats) await killed(nats);
    await agent?.stop();
    ns?.delete();
    cg?.delete();
    if (agent) cleanupDir(agent.dir);
    removeBuild();
  }, 30_000);

  it('the agent reaches NATS through its own firewall; no other program passes that way', async () => {
    // Well before a held connection's deadline could have let it through (it would be refused: --default block).
    await waitFor('the agent connected to NATS', () => status()?.fleet?.state === 'connected', TIMEOUT_MS);
    expect(status()?.counters.ownConnections).toBeGreaterThan(0);

    const attempts: Array<{ name: string; proc: ChildProcess; out: ReturnType<typeof lines> }> = [];
    const attempt = (name: string, argv: string[]): void => {
      const proc = spawnIn(ns!, cg, argv);
      attempts.push({ name, proc, out: lines(proc) }); // read from the start: a quick child's output is not lost
    };
    const nodeConnect = [process.execPath, '-e', `const s=require('net').connect(${PORT},'127.0.0.1');s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log('refused',e.code);process.exit(0)});setTimeout(()=>{console.log('refused timeout');process.exit(0)},${TIMEOUT_MS + 3000});`];
    const wave = (): void => {
      // the same server and port as the agent's own link
      attempt('plain program to the NATS port', pythonConnect());
      // the agent's own executable, started under the agent's name and arguments
      attempt('node under the agent\'s name', ['bash', '-c', `exec -a "node ${join(buildAgent(), 'run-agent.mjs')} agent" "$0" "$@"`, ...nodeConnect]);
      // socket marks play no part in the exemption
      attempt('socket marked 1', pythonConnect(1));
      attempt('socket marked with the queue number', pythonConnect(7231));
    };
    wave();
    // While the agent itself reconnects (its server restarted): its exemption must not widen to others.
    await killed(nats!);
    nats = await startNats();
    wave();
    await waitFor('the agent connected again', () => status()?.fleet?.state === 'connected', TIMEOUT_MS);

    let bypasses = 0;
    for (const a of attempts) {
      const line = await a.out.next(() => true, TIMEOUT_MS + 5000);
      if (line.startsWith('connected')) bypasses++;
      expect(line, a.name).toMatch(/^refused/);
    }
    const crashes = agent.proc.exitCode === null ? 0 : 1;
    reportAttack('nats-self-exemption', { tries: attempts.length, bypasses, crashes });
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
    // Each was held and given the default, not let through as the agent's own.
    await waitFor('the default counted for each (the status file is written once a second)', () => status()!.counters.decidedByDefault >= attempts.length, 3000);
  }, 40_000);
});
