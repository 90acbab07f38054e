// Crash and restart, fail-open vs fail-closed, stale BPF programs and firewall rules, and who may talk
// to the agent.
import { describe, expect, it } from 'vitest';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { ATTACH, queryAttached } from '../../src/native/linux/bpf-syscall.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, connectScript, lines, skipUnlessCapable, spawnIn, startAgent, waitFor,
} from './helpers.js';
import { useNamespace } from './fixture.js';
import { install } from '../cli/install.js';

const skip = skipUnlessCapable();

function attachedAtConnect4(cg: TestCgroup): number {
  const fd = openSync(cg.path, 'r');
  try {
    return queryAttached(fd, ATTACH.INET4_CONNECT).length;
  } finally {
    closeSync(fd);
  }
}

/** The agent's rules in the namespace, whichever backend it chose (iptables here; nft where the
 *  kernel has the native queue statement). */
function ourRules(ns: Netns): string {
  return ns.sh('iptables -w -t mangle -S 2>/dev/null | grep FLOWTOP; nft list table inet flowtop 2>/dev/null; true');
}

/** The PIDs of a process's children (every thread's). */
function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
}

async function tryConnect(ns: Netns, cg: TestCgroup, port: number, timeoutMs: number): Promise<string> {
  const child = spawnIn(ns, cg, connectScript(port, timeoutMs));
  const out = lines(child);
  const result = await out.next((l) => !l.startsWith('pid'), timeoutMs + 5000);
  child.stdin?.end();
  return result;
}

describe.skipIf(skip)('flowtop agent lifecycle', () => {
  const PORT = 7300;
  const space = useNamespace({ servers: [PORT] });

  it('SIGKILL with the default fail-open: traffic flows; a restart removes the stale program and rules (no duplicates)', async () => {
    const first = await startAgent(space.ns, space.cg, ['--queue-num', '7304', '--timeout', '30s', '--default', 'block']);
    expect(attachedAtConnect4(space.cg)).toBe(1);
    await first.kill();
    // the crashed agent's program stays attached and its rules stay installed…
    expect(attachedAtConnect4(space.cg)).toBe(1);
    expect(ourRules(space.ns)).toMatch(/FLOWTOP-OUT|table inet flowtop/);
    // …but with nobody bound to the queue, --queue-bypass lets connections through
    expect(await tryConnect(space.ns, space.cg, PORT, 3000)).toMatch(/^connected/);
    const second = await startAgent(space.ns, space.cg, ['--queue-num', '7304', '--timeout', '30s'], first.dir);
    try {
      expect(second.stderr.join('\n')).toMatch(/removed 6 BPF programs left attached/);
      expect(second.stderr.join('\n')).toMatch(/replaced firewall rules/);
      expect(attachedAtConnect4(space.cg)).toBe(1);
      const rules = ourRules(space.ns);
      const copies = rules.split('\n').filter((l) => /^-A OUTPUT .*-j FLOWTOP-OUT/.test(l) || l.startsWith('table inet flowtop'));
      expect(copies).toHaveLength(1);
      // and the restarted agent judges again
      const client = new TestClient(second.socket);
      await client.subscribe();
      const pending = tryConnect(space.ns, space.cg, PORT, 5000);
      const flow = await waitFor('a pending flow', () => client.flows((f) => !!f.pending && f.remote.port === PORT)[0]);
      client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
      expect(await pending).toMatch(/^connected/);
      client.close();
    } finally {
      expect(await second.stop()).toBe(0);
      cleanupDir(first.dir);
    }
    // a clean exit leaves nothing behind
    expect(attachedAtConnect4(space.cg)).toBe(0);
    expect(ourRules(space.ns).trim()).toBe('');
  }, 60_000);

  it('logging to a pipe whose reader has gone (`| tee` ended by the same Ctrl-C): cleanup still finishes', async () => {
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7306']);
    expect(attachedAtConnect4(space.cg)).toBe(1);
    const exited = new Promise<number | null>((resolve) => agent.proc.on('exit', (code) => resolve(code)));
    agent.proc.stderr?.destroy(); // the reader is gone: every later log line fails with EPIPE
    agent.proc.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(existsSync(agent.socket)).toBe(false);
    expect(existsSync(`${agent.socket}.status.json`)).toBe(false);
    expect(ourRules(space.ns)).toBe('');
    expect(attachedAtConnect4(space.cg)).toBe(0);
    cleanupDir(agent.dir);
  });

  it('SIGKILL with --fail-closed: new connections are refused until an agent runs again', async () => {
    const first = await startAgent(space.ns, space.cg, ['--queue-num', '7305', '--fail-closed', '--default', 'allow', '--timeout', '1s']);
    // its firewall-cleanup helper (see firewall-cleanup.ts) waits for a job that never comes: it exits
    // when the agent dies, having removed nothing
    const helpers = childrenOf(first.proc.pid!);
    expect(helpers).toHaveLength(1);
    await first.kill();
    await waitFor('the cleanup helper to exit with the agent', () => !existsSync(`/proc/${helpers[0]}`), 5000);
    expect(ourRules(space.ns)).toContain('FLOWTOP-OUT-');
    expect(await tryConnect(space.ns, space.cg, PORT, 1500)).toMatch(/^timeout/);
    const second = await startAgent(space.ns, space.cg, ['--queue-num', '7305', '--fail-closed', '--default', 'allow', '--timeout', '1s'], first.dir);
    try {
      // the default (allow) applies after the 1 s deadline: traffic works again
      expect(await tryConnect(space.ns, space.cg, PORT, 5000)).toMatch(/^connected/);
    } finally {
      await second.stop();
      cleanupDir(first.dir);
    }
  }, 60_000);

  it('root is served; a user outside the flowtop group is refused', async () => {
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7306']);
    try {
      const root = new TestClient(agent.socket);
      await root.subscribe();
      root.send({ type: 'rules-list' });
      await root.waitFor('rules', (m) => m.type === 'rules');
      expect(root.messages.some((m) => m.type === 'error')).toBe(false);
      root.close();

      const asNobody = (): Promise<string[]> => {
        const child = spawn(process.execPath, ['-e', `
          const s = require('net').connect(${JSON.stringify(agent.socket)});
          s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
          s.on('connect', () => s.write(JSON.stringify({ type: 'subscribe', protocol: 1, client: { name: 'n', version: '1' } }) + '\\n'));
          s.on('data', (d) => process.stdout.write(d));
          s.on('close', () => process.exit(0));
        `], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
        const out = lines(child);
        return new Promise((resolve) => child.on('exit', () => resolve(out.all)));
      };
      // the socket is 0660 root:flowtop: the kernel refuses the connection
      expect(await asNobody()).toEqual(['error EACCES']);
      // with the file mode loosened, SO_PEERCRED still refuses, with a clear reason
      chmodSync(agent.socket, 0o666);
      const replies = (await asNobody()).map((l) => JSON.parse(l) as { type: string; code?: string; message?: string });
      // nothing but the refusal: no hello (host name, mode) for a peer that may not watch
      expect(replies).toHaveLength(1);
      const refusal = replies[0];
      expect(refusal?.type).toBe('error');
      expect(refusal?.code).toBe('not-authorised');
      expect(refusal?.message).toMatch(/not root and not in group "flowtop"/);
    } finally {
      await agent.stop();
      cleanupDir(agent.dir);
    }
  }, 60_000);

  it('without BPF the owner is found by an inode scan, and hello says so', async () => {
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7307', '--no-bpf']);
    try {
      const client = new TestClient(agent.socket);
      await client.subscribe();
      const hello = client.messages[0];
      expect(hello?.type === 'hello' && hello.mode?.attribution).toBe('inode-scan');
      const child = spawnIn(space.ns, space.cg, connectScript(PORT, 5000));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the flow', () => client.flows((f) => !!f.pending && f.remote.port === PORT)[0]);
      expect(flow.pid).toBe(pid);
      expect(flow.token).toBeDefined();
      client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
      expect(await out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
      child.stdin?.end();
      client.close();
    } finally {
      await agent.stop();
      cleanupDir(agent.dir);
    }
  }, 60_000);

  it('--inbound holds a connection arriving from another host and names the listening process', async () => {
    const remote = new Netns();
    const link = `ftv${process.pid % 100000}`;
    try {
      execFileSync('ip', ['link', 'add', `${link}a`, 'netns', space.ns.name, 'type', 'veth', 'peer', 'name', `${link}b`, 'netns', remote.name]);
      space.ns.sh(`ip addr add 10.231.0.1/24 dev ${link}a && ip link set ${link}a up`);
      remote.sh(`ip addr add 10.231.0.2/24 dev ${link}b && ip link set ${link}b up`);
      const listener = spawnIn(space.ns, space.cg, [process.execPath, '-e', `require('net').createServer((c) => c.end()).listen(${PORT + 1}, '10.231.0.1', () => console.log('pid', process.pid))`]);
      const listenerPid = Number((await lines(listener).next((l) => l.startsWith('pid'))).split(' ')[1]);
      const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7308', '--inbound']);
      try {
        const client = new TestClient(agent.socket);
        await client.subscribe();
        const child = spawn(remote.enter[0]!, [...remote.enter.slice(1), process.execPath, '-e', `
          const s = require('net').connect(${PORT + 1}, '10.231.0.1');
          s.on('connect', () => { console.log('connected'); s.destroy(); });
          s.on('error', (e) => console.log('error', e.code));
        `], { stdio: ['ignore', 'pipe', 'inherit'] });
        const out = lines(child);
        const flow = await waitFor('the inbound flow', () => client.flows((f) => f.direction === 'inbound' && !!f.pending)[0]);
        expect(flow).toMatchObject({ local: { address: '10.231.0.1', port: PORT + 1 }, remote: { address: '10.231.0.2' }, pid: listenerPid });
        client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
        expect(await out.next()).toBe('connected');
        client.close();
      } finally {
        await agent.stop();
        cleanupDir(agent.dir);
        listener.kill();
      }
    } finally {
      remote.delete();
    }
  }, 60_000);

  it('a second agent is refused, naming the running one, and touches nothing of it; one in another namespace on its own socket may share the cgroup', async () => {
    const first = await startAgent(space.ns, space.cg, ['--queue-num', '7310']);
    const dist = buildAgent();
    const other = new Netns();
    const run = (where: Netns, socket: string): { code: number | null; out: string } => {
      const r = spawnSync(where.enter[0]!, [...where.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), 'agent', '--no-history', '--socket', socket,
        '--rules', join(first.dir, 'other-rules.json'), '--cgroup', space.cg.path, '--queue-num', '7311'], { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };
    try {
      const rulesBefore = ourRules(space.ns);
      // same namespace, another socket
      const sameNs = run(space.ns, join(first.dir, 'second.sock'));
      expect(sameNs.code).toBe(1);
      expect(sameNs.out).toContain(`another flowtop agent is running in this network namespace: pid ${first.proc.pid}, socket ${first.socket}`);
      expect(sameNs.out).not.toMatch(/removed \d+ BPF programs/);
      // same socket, another namespace
      const sameSocket = run(other, first.socket);
      expect(sameSocket.code).toBe(1);
      expect(sameSocket.out).toContain(`another flowtop agent is running on ${first.socket}: pid ${first.proc.pid}`);
      // nothing of the first was touched: its program, rules, status file, and it still serves
      expect(attachedAtConnect4(space.cg)).toBe(1);
      expect(ourRules(space.ns)).toBe(rulesBefore);
      expect(existsSync(`${first.socket}.status.json`)).toBe(true);
      const client = new TestClient(first.socket);
      await client.subscribe();
      client.close();
      // another namespace on its own socket runs beside it, sharing the cgroup: the first's program stays
      const beside = await startAgent(other, space.cg, ['--queue-num', '7312']);
      try {
        expect(beside.stderr.join('\n')).not.toMatch(/removed \d+ BPF programs/);
        expect(attachedAtConnect4(space.cg)).toBe(2);
      } finally {
        expect(await beside.stop()).toBe(0);
        cleanupDir(beside.dir);
      }
      expect(attachedAtConnect4(space.cg)).toBe(1);
    } finally {
      expect(await first.stop()).toBe(0);
      other.delete();
      cleanupDir(first.dir);
    }
    expect(attachedAtConnect4(space.cg)).toBe(0);
  }, 60_000);

  it('refuses a file, a directory or a symlink at --socket, and a directory others can write; --status believes only root\'s status file', async () => {
    const dist = buildAgent();
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-sockpath-'));
    const run = (socket: string, ...extra: string[]): { code: number | null; out: string } => {
      const r = spawnSync(space.ns.enter[0]!, [...space.ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), 'agent', '--no-history', '--socket', socket,
        '--rules', join(dir, 'rules.json'), '--queue-num', '7309', '--no-bpf', ...extra], { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };
    try {
      chmodSync(dir, 0o755);
      writeFileSync(join(dir, 'file.sock'), 'keep me');
      mkdirSync(join(dir, 'dir.sock'));
      symlinkSync(join(dir, 'file.sock'), join(dir, 'link.sock'));
      expect(run(join(dir, 'file.sock')).out).toMatch(/file\.sock exists and is not a socket: refusing/);
      expect(run(join(dir, 'dir.sock')).out).toMatch(/dir\.sock exists and is not a socket: refusing/);
      expect(run(join(dir, 'link.sock')).out).toMatch(/link\.sock is a symbolic link: refusing/);
      expect(readFileSync(join(dir, 'file.sock'), 'utf8')).toBe('keep me');
      mkdirSync(join(dir, 'open'), { mode: 0o777 });
      chmodSync(join(dir, 'open'), 0o777);
      expect(run(join(dir, 'open', 'agent.sock')).out).toMatch(/refusing the socket directory .*writable by others and not sticky/);
      // nothing of the agent's was left in any of them, and the firewall is untouched
      expect(ourRules(space.ns).trim()).toBe('');
      // a status file planted by another user is not believed
      writeFileSync(join(dir, 'x.sock.status.json'), JSON.stringify({ pid: process.pid, counters: {} }));
      chownSync(join(dir, 'x.sock.status.json'), 65534, 65534);
      const status = run(join(dir, 'x.sock'), '--status');
      expect(status.code).toBe(3);
      expect(status.out).toMatch(/belongs to uid 65534, not root: not written by the agent/);
    } finally {
      cleanupDir(dir);
    }
  }, 60_000);

  it('refuses to start without root, with the command to run', async () => {
    // nobody runs an installed copy in a 0755 temporary folder: the checkout may sit where nobody
    // cannot enter (under /root, a 0700 home or mktemp -d folder)
    const installation = install({ dist: buildAgent() });
    try {
      const [node, ...argv] = installation.flowtop;
      const child = spawn(node!, [...argv, 'agent'], { uid: 65534, gid: 65534, cwd: installation.dir, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise((resolve) => child.on('exit', resolve));
      expect(err).toContain('needs root: run sudo flowtop agent');
      expect(code).toBe(1);
    } finally {
      installation.remove();
    }
  }, 120_000); // compiling the agent takes most of it, a minute and more on a busy 2-core machine
});
