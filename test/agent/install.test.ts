// `flowtop agent install|uninstall`: the unit it writes passes `systemd-analyze verify`, carries the
// flags given, and — run with no capability but those it lists — the agent starts and judges flows.
// systemd is not PID 1 on this machine: install must say it wrote the unit and started nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_CAPABILITIES, execWord } from '../../src/agent/systemd-unit.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, connectScript, hostRules, lines, removeBuild, skipUnlessCapable, spawnIn,
  startServer, waitFor,
} from './helpers.js';
import { tempDir } from '../rules/helpers.js';

const skip = skipUnlessCapable();
const PORT = 7360;

describe('systemd unit words', () => {
  it('quotes white space and quotes, and escapes the specifier and variable signs', () => {
    expect(execWord('/usr/bin/node')).toBe('/usr/bin/node');
    expect(execWord('/tmp/a b/x.sock')).toBe('"/tmp/a b/x.sock"');
    expect(execWord('50%$HOME')).toBe('"50%%$$HOME"');
    expect(execWord('say "hi"')).toBe('"say \\"hi\\""');
  });
});

describe.skipIf(skip)('flowtop agent install / uninstall', () => {
  let dist: string;
  let dir: string;
  let before: string;
  const flowtop = (...args: string[]): { code: number | null; out: string } => {
    const r = spawnSync(process.execPath, [join(dist, 'run-agent.mjs'), ...args], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };

  beforeAll(() => {
    before = hostRules();
    dist = buildAgent();
    dir = tempDir('flowtop-install-');
  }, 60_000);

  afterAll(() => {
    cleanupDir(dir);
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('writes a unit that systemd-analyze verifies, says it started nothing where systemd is not PID 1, and uninstall removes only its own unit', () => {
    const units = join(dir, 'units');
    mkdirSync(units);
    const socket = join(dir, 'run', 'agent.sock');
    const rules = join(dir, 'etc', 'rules.json');
    const r = flowtop('agent', 'install', '--fail-closed', '--queue-num', '7361', '--socket', socket, '--rules', rules, '--unit-dir', units);
    expect(r.code).toBe(0);
    const unitPath = join(units, 'flowtop-agent.service');
    expect(r.out).toContain(`wrote ${unitPath}`);
    expect(existsSync('/run/systemd/system')).toBe(false); // this machine: systemd installed, not running
    expect(r.out).toMatch(/systemd is not the init system here .*NOT enabled or started/);
    const unit = readFileSync(unitPath, 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(dist, 'run-agent.mjs')} agent --fail-closed --queue-num 7361 --socket ${socket} --rules ${rules}`);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^ProtectSystem=full$/m);
    expect(unit).toMatch(/^ProtectHome=yes$/m);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toContain(`CapabilityBoundingSet=${AGENT_CAPABILITIES.map(([c]) => c).join(' ')}`);
    expect(unit).toContain(`ReadWritePaths=-${join(dir, 'etc')} -${join(dir, 'run')}`);
    expect(unit).toMatch(/^PrivateTmp=no$/m); // its socket is in /tmp: clients must see it
    const verify = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
    expect(`${verify.stdout}${verify.stderr}`.trim()).toBe('');
    expect(verify.status).toBe(0);
    // bad agent flags are refused before anything is written
    const bad = flowtop('agent', 'install', '--default', 'maybe', '--unit-dir', join(dir, 'elsewhere'));
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/--default must be allow or block/);
    expect(existsSync(join(dir, 'elsewhere'))).toBe(false);
    // uninstall removes its unit; a unit it did not write is left alone
    const gone = flowtop('agent', 'uninstall', '--unit-dir', units);
    expect(gone.code).toBe(0);
    expect(gone.out).toMatch(/removed .*flowtop-agent\.service; systemd is not running here/);
    expect(existsSync(unitPath)).toBe(false);
    writeFileSync(unitPath, '[Service]\nExecStart=/bin/true\n');
    const foreign = flowtop('agent', 'uninstall', '--unit-dir', units);
    expect(foreign.code).toBe(1);
    expect(foreign.out).toMatch(/was not written by flowtop agent install: left alone/);
    expect(existsSync(unitPath)).toBe(true);
  });

  it('the capabilities the unit keeps are enough: the agent, bounded to them, starts, records owners with BPF and judges a flow', async () => {
    const ns = new Netns();
    const cg = new TestCgroup();
    const server = await startServer(ns, PORT);
    const socketDir = tempDir('flowtop-install-sock-');
    const socket = join(socketDir, 'agent.sock');
    const bounding = `-all,${AGENT_CAPABILITIES.map(([c]) => `+${c.slice(4).toLowerCase()}`).join(',')}`;
    const agent = spawn(ns.enter[0]!, [...ns.enter.slice(1), 'setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', process.execPath, join(dist, 'run-agent.mjs'),
      'agent', '--no-history', '--socket', socket, '--rules', join(socketDir, 'rules.json'), '--cgroup', cg.path, '--queue-num', '7362', '--timeout', '5s'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr: string[] = [];
    agent.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
    try {
      await waitFor(`the bounded agent to be ready (${stderr.join('')})`, () => {
        if (agent.exitCode !== null) throw new Error(`agent exited: ${stderr.join('')}`);
        return stderr.join('').includes('ready on');
      }, 20_000);
      const caps = readFileSync(`/proc/${agent.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('CapBnd:'));
      expect(caps).not.toMatch(/0000003fffffffff|000001ffffffffff/); // really bounded
      const client = new TestClient(socket);
      await client.subscribe();
      const hello = client.messages[0];
      expect(hello?.type === 'hello' && hello.mode?.attribution).toBe('bpf-cookie');
      const child = spawnIn(ns, cg, connectScript(PORT, 5000));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the held flow', () => client.flows((f) => !!f.pending && f.remote.port === PORT)[0]);
      expect(flow.pid).toBe(pid);
      client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
      expect(await out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
      child.stdin?.end();
      client.close();
    } finally {
      agent.kill('SIGTERM');
      await new Promise((resolve) => (agent.exitCode !== null ? resolve(null) : agent.once('exit', resolve)));
      server.kill();
      ns.delete();
      cg.delete();
      cleanupDir(socketDir);
    }
    expect(agent.exitCode).toBe(0);
    expect(stderr.join('')).not.toMatch(/EPERM|not permitted/i);
  }, 60_000);
});
