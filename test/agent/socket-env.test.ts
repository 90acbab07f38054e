// `FLOWTOP_SOCKET=… flowtop agent` listens where FLOWTOP_SOCKET says, as every client looks for it
// (it used to listen on /run/flowtop/flowtop.sock whatever the variable said), and its hello carries
// the version in package.json.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, TestCgroup, TestClient, buildAgent, cleanupDir, hostRules, removeBuild, skipUnlessCapable, waitFor } from './helpers.js';

const skip = skipUnlessCapable();
const ROOT = join(import.meta.dirname, '../..');

describe.skipIf(skip)('the agent socket from FLOWTOP_SOCKET', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let dir: string;
  let agent: ChildProcess | undefined;
  let before: string;

  beforeAll(() => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    dir = mkdtempSync(join(tmpdir(), 'flowtop-env-'));
    chmodSync(dir, 0o755);
  }, 60_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((resolve) => agent!.on('exit', resolve));
      agent.kill('SIGTERM');
      await exited;
    }
    ns?.delete();
    cg?.delete();
    cleanupDir(dir);
    removeBuild();
    expect(hostRules()).toBe(before);
  }, 30_000);

  it('listens on $FLOWTOP_SOCKET when no --socket is given, and a client given the same variable finds it', async () => {
    const socket = join(dir, 'from-env.sock');
    const dist = buildAgent();
    const stderr: string[] = [];
    agent = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), 'agent', '--rules', join(dir, 'rules.json'), '--cgroup', cg.path], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, FLOWTOP_SOCKET: socket },
    });
    agent.stderr?.on('data', (d: Buffer) => stderr.push(...d.toString().split('\n').filter(Boolean)));
    await waitFor(`the agent to be ready (${stderr.join(' | ')})`, () => {
      if (agent!.exitCode !== null) throw new Error(`agent exited: ${stderr.join('\n')}`);
      return stderr.some((l) => l.includes('ready on'));
    }, 20_000);
    expect(stderr).toContain(`flowtop agent: ready on ${socket}`);
    expect(existsSync(socket)).toBe(true);

    const client = new TestClient(socket);
    await client.subscribe();
    const hello = client.messages.find((m) => m.type === 'hello');
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(hello).toMatchObject({ type: 'hello', extension: { name: 'flowtop-agent', version } });
    client.close();

    // `flowtop agent --status` with the same variable reads this agent's status, not the default one's.
    const status = spawnSync(process.execPath, [join(dist, 'run-agent.mjs'), 'agent', '--status'], { encoding: 'utf8', env: { ...process.env, FLOWTOP_SOCKET: socket } });
    expect(`${status.stdout}${status.stderr}`).toContain(socket);
    expect(status.status).toBe(0);
  }, 60_000);
});
