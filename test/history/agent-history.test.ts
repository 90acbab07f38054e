// The agent's history under the conditions the issue names, with the real agent in a namespace:
// recorded with no client connected; a SIGKILL during sustained load loses at most the last second
// and leaves an intact file the next agent reopens; a reader holding a transaction never blocks the
// writer; an unwritable path or a foreign file is reported once and the agent keeps judging.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, lines, skipUnlessCapable, spawnIn, startAgent, waitFor,
} from '../agent/helpers.js';
import { useNamespace } from '../agent/fixture.js';
import type { HelloMessage } from '../../src/protocol/messages.js';
import { claimRecording } from '../../src/history/recording-lock.js';

const skip = skipUnlessCapable();
const SQLITE = fileURLToPath(new URL('../../node_modules/better-sqlite3', import.meta.url));
const PORT = 7240;

/** Connects to PORT over and over, 16 at a time; prints "<ms> <completed>" every 50 ms. */
const LOAD = `
  const net = require('net'); let done = 0;
  const one = () => { const s = net.connect(${PORT}, '127.0.0.1'); s.on('connect', () => { done++; s.destroy(); one(); }); s.on('error', () => setTimeout(one, 10)); };
  for (let i = 0; i < 16; i++) one();
  setInterval(() => console.log(Date.now(), done), 50);
  process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
`;

function writeRules(dir: string): void {
  writeFileSync(join(dir, 'rules.json'), JSON.stringify({
    version: 1,
    policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false },
    rules: [{ id: 'rload', action: 'allow', protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true }],
  }));
}

/** The history line of `flowtop agent --status` for this agent. */
function statusLine(socket: string): string {
  const r = spawnSync(process.execPath, [join(buildAgent(), 'run-agent.mjs'), 'agent', '--status', '--socket', socket], { encoding: 'utf8', timeout: 20_000 });
  return r.stdout.split('\n').find((l) => l.trimStart().startsWith('history ')) ?? `(no history line) ${r.stdout}${r.stderr}`;
}

function countFlows(path: string, where = `rport = ${PORT}`): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM flows WHERE ${where}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** One connection through the agent, decided by the rule: "connected" when the agent judged it. */
async function connectOnce(ns: Netns, cg: TestCgroup): Promise<string> {
  const child = spawnIn(ns, cg, [process.execPath, '-e', `require('net').connect(${PORT}, '127.0.0.1').on('connect', function () { console.log('connected'); this.destroy(); }).on('error', (e) => console.log('error', e.code)); setTimeout(() => console.log('timeout'), 5000).unref();`]);
  return lines(child).next(() => true, 10_000);
}

describe.skipIf(skip)('flowtop agent history', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    chmodSync(d, 0o755);
    writeRules(d);
    dirs.push(d);
    return d;
  };
  const space = useNamespace({ servers: [PORT] });

  afterAll(() => {
    for (const d of dirs) cleanupDir(d);
  });

  it('records while no client watches; SIGKILL under load loses at most the last second; a reader never blocks the writer; the file reopens intact', async () => {
    const dir = tempDir();
    const path = join(dir, 'history.db');
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7410', '--history', path], dir);
    const load = spawnIn(space.ns, space.cg, [process.execPath, '-e', LOAD]);
    const progress = lines(load);
    try {
      await progress.next((l) => Number(l.split(' ')[1]) > 500, 15_000);
      // A reader holding a read transaction open for a second: the writer goes on.
      const reader = new Database(path, { readonly: true });
      reader.exec('BEGIN');
      const seenByReader = (reader.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;
      const atStart = countFlows(path);
      await new Promise((r) => setTimeout(r, 1000));
      expect((reader.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n).toBe(seenByReader); // its snapshot
      expect(countFlows(path)).toBeGreaterThan(atStart + 100); // the writer did not wait for it
      reader.exec('COMMIT');
      reader.close();
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = Date.now();
      await agent.kill();
      const lastSecond = progress.all.map((l) => l.split(' ').map(Number) as [number, number]).filter(([t]) => t <= killedAt - 1000).at(-1)!;
      const total = progress.all.map((l) => Number(l.split(' ')[1])).at(-1)!;
      load.stdin?.end();
      const db = new Database(path, { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
      const recorded = countFlows(path);
      // Every connection made up to a second before the kill is there; nothing is invented.
      expect(recorded).toBeGreaterThanOrEqual(lastSecond[1]);
      expect(recorded).toBeLessThanOrEqual(total + 16);
      expect(agent.stderr.filter((l) => l.includes('history:') && !l.includes('first-seen'))).toEqual([]);
      // The next agent reopens the same file and records on.
      const again = await startAgent(space.ns, space.cg, ['--queue-num', '7410', '--history', path], dir);
      try {
        expect(await connectOnce(space.ns, space.cg)).toBe('connected');
        await waitFor('the new flow recorded', () => countFlows(path) > recorded, 5000);
        expect(again.stderr.filter((l) => l.includes('not recording'))).toEqual([]);
      } finally {
        await again.stop();
      }
      const closed = new Database(path, { readonly: true });
      expect(closed.pragma('integrity_check', { simple: true })).toBe('ok');
      closed.close();
    } finally {
      load.kill();
      await agent.kill();
    }
  }, 60_000);

  it('programs that connect and exit within 100 ms, decided by a port rule, are recorded with their program', async () => {
    const dir = tempDir();
    const path = join(dir, 'history.db');
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7415', '--history', path], dir);
    try {
      // One that stays a while first, so the attribution backend's one-time start (the package
      // index) is behind us.
      const first = spawnIn(space.ns, space.cg, ['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${PORT} && sleep 5; :`]);
      await waitFor('the first flow recorded with its program', () => countFlows(path, `rport = ${PORT} AND ident IS NOT NULL`) > 0, 20_000);
      first.kill();
      const before = countFlows(path);
      // Twenty shells, each connecting once (bash's /dev/tcp), then gone 100 ms later (`; :` keeps
      // bash itself running meanwhile: it would exec a last simple command in its own place).
      const shells = Array.from({ length: 20 }, () => spawnIn(space.ns, space.cg, ['bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${PORT} && sleep 0.1; :`]));
      await Promise.all(shells.map((c) => new Promise((r) => c.once('exit', r))));
      await waitFor('the shells recorded', () => countFlows(path) >= before + 20, 10_000);
      await new Promise((r) => setTimeout(r, 1500)); // their rows completed
      const db = new Database(path, { readonly: true });
      const named = (db.prepare(`SELECT count(*) AS n FROM flows f JOIN identities i ON i.id = f.ident WHERE f.rport = ${PORT} AND i.name = 'bash'`).get() as { n: number }).n;
      db.close();
      // Looked up when the recorder first sees a flow, not at its next batch (up to 250 ms later),
      // by which time most of these were gone and recorded without their program.
      // (21 shells in all, the first included.) Measured: 16–21 with the lookup started at once, 5
      // when it waited for the recorder's next batch.
      expect(named, `${named} of 21 recorded as bash`).toBeGreaterThanOrEqual(12);
      // --status says where it records and counts every flow written (nothing else connects here).
      const all = countFlows(path, '1');
      const line = await waitFor('--status counting them all', () => {
        const l = statusLine(agent.socket);
        return l.includes(`: ${all} flows written`) && l;
      }, 5_000).catch(() => statusLine(agent.socket));
      expect(line).toMatch(new RegExp(`^  history +recording into ${path.replace(/[.]/g, '\\.')} \\([0-9.]+[KM]\\): ${all} flows written, the last \\d+ s ago; 0 not written$`));
    } finally {
      await agent.stop();
    }
  }, 60_000);

  it('the file is root:flowtop 0640, so the group reads it and nobody else', async () => {
    const dir = tempDir();
    const path = join(dir, 'history.db');
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7411', '--history', path], dir);
    try {
      expect(await connectOnce(space.ns, space.cg)).toBe('connected');
      await waitFor('a flow recorded', () => countFlows(path) > 0, 5000);
      const st = statSync(path);
      expect(st.mode & 0o777).toBe(0o640);
      expect(st.gid).toBe(Number(execFileSync('getent', ['group', 'flowtop'], { encoding: 'utf8' }).split(':')[2]));
      for (const side of ['-wal', '-shm']) expect(statSync(path + side).mode & 0o777).toBe(0o640);
      // A member of the group reads it while the agent writes (SQLite's read-only -shm access).
      const gid = st.gid;
      const read = (groups: string[]): { status: number | null; out: string; err: string } => {
        const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', ...groups, '--', process.execPath, '-e',
          `const D = require(${JSON.stringify(SQLITE)}); console.log(new D(${JSON.stringify(path)}, { readonly: true }).prepare('SELECT count(*) AS n FROM flows').get().n)`], { encoding: 'utf8' });
        return { status: r.status, out: r.stdout, err: r.stderr };
      };
      const member = read([`--groups=${gid}`]);
      expect(member.status, member.err).toBe(0);
      expect(Number(member.out)).toBeGreaterThan(0);
      expect(read(['--clear-groups']).status).not.toBe(0);
    } finally {
      await agent.stop();
    }
    // Stopped, the file stands alone (no -wal needed), so the group still reads it.
    expect(statSync(path).mode & 0o777).toBe(0o640);
  }, 60_000);

  it('the agent says in its hello where it records (or "off"), and `flowtop history --socket` reads that file', async () => {
    const dir = tempDir();
    const path = join(dir, 'elsewhere', 'history.db');
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7414', '--history', path], dir);
    const cli = (args: string[], setpriv: string[] = []) => {
      const node = [process.execPath, join(buildAgent(), 'run-agent.mjs'), 'history', ...args];
      const r = spawnSync(setpriv.length > 0 ? 'setpriv' : node[0]!, setpriv.length > 0 ? [...setpriv, '--', ...node] : node.slice(1), { encoding: 'utf8', timeout: 20_000, env: { ...process.env, HOME: dir, XDG_STATE_HOME: join(dir, 'state') } });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    try {
      const client = new TestClient(agent.socket);
      await client.subscribe();
      const hello = client.messages.find((m): m is HelloMessage => m.type === 'hello')!;
      client.close();
      expect(hello.mode?.history).toBe(path);
      expect(await connectOnce(space.ns, space.cg)).toBe('connected');
      await waitFor('the flow recorded', () => existsSync(path) && countFlows(path) > 0, 5000);
      // Not the default file: the one the agent named.
      const read = cli(['--socket', agent.socket, '--json']);
      expect(read.code, read.err).toBe(0);
      expect((JSON.parse(read.out) as Array<{ remote: { port: number } }>).some((f) => f.remote.port === PORT)).toBe(true);
      // A member of the agent's group is served and reads it; anyone else is told to join.
      const gid = statSync(path).gid;
      const member = cli(['--socket', agent.socket, '--json'], ['--reuid=65534', '--regid=65534', `--groups=${gid}`]);
      expect(member.code, member.err).toBe(0);
      expect(JSON.parse(member.out)).not.toHaveLength(0);
      const other = cli(['--socket', agent.socket], ['--reuid=65534', '--regid=65534', '--clear-groups']);
      expect(other.code).toBe(1);
      expect(other.err).toContain('sudo usermod -aG flowtop $USER');
    } finally {
      await agent.stop();
    }
    // An agent that records nothing says so, and the command says it too (not the default file's rows).
    const off = await startAgent(space.ns, space.cg, ['--queue-num', '7414', '--no-history'], tempDir());
    try {
      const client = new TestClient(off.socket);
      await client.subscribe();
      expect(client.messages.find((m): m is HelloMessage => m.type === 'hello')!.mode?.history).toBe('off');
      client.close();
      const r = cli(['--socket', off.socket]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^flowtop: no history to read: the agent \(.*agent\.sock\) records no history/);
    } finally {
      await off.stop();
    }
  }, 60_000);

  it('an unwritable path is reported once and the agent keeps judging', async () => {
    const dir = tempDir();
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', ro]);
    try {
      const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7412', '--history', join(ro, 'history.db')], dir);
      try {
        for (let i = 0; i < 3; i++) expect(await connectOnce(space.ns, space.cg)).toBe('connected');
        const said = agent.stderr.filter((l) => l.includes('history:'));
        expect(said).toHaveLength(1);
        expect(said[0]).toMatch(/not recording: .*read-only/i);
        await waitFor('the status file', () => /^  history /.test(statusLine(agent.socket)), 5_000);
        expect(statusLine(agent.socket)).toMatch(/^  history +off: .*read-only/i);
      } finally {
        await agent.stop();
      }
    } finally {
      execFileSync('umount', [ro]);
    }
  }, 60_000);

  it('a file another flowtop records into is left to it: said once, in --status, and the agent keeps judging', async () => {
    const dir = tempDir();
    const path = join(dir, 'history.db');
    const other = claimRecording(path, 'flowtop');
    try {
      const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7416', '--history', path], dir);
      try {
        expect(await connectOnce(space.ns, space.cg)).toBe('connected');
        const said = agent.stderr.filter((l) => l.includes('history:'));
        expect(said).toEqual([expect.stringMatching(new RegExp(`not recording: .*history\\.db is being recorded into by another flowtop \\(pid ${process.pid}, since .*\\); one recorder per file: give this agent its own --history PATH, or --no-history`))]);
        await waitFor('the status file', () => /^  history /.test(statusLine(agent.socket)), 5_000);
        expect(statusLine(agent.socket)).toMatch(/^  history +off: .*being recorded into by another flowtop/);
      } finally {
        await agent.stop();
      }
    } finally {
      other.release();
    }
    expect(statSync(path).size).toBe(0); // prepared, and nothing written into it by this agent
  }, 60_000);

  it('a file that is not a history is refused with the reason, left as it was, and the agent keeps judging', async () => {
    const dir = tempDir();
    const path = join(dir, 'notes.db');
    const text = 'these are my notes\n'.repeat(100);
    writeFileSync(path, text);
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7413', '--history', path], dir);
    try {
      expect(await connectOnce(space.ns, space.cg)).toBe('connected');
      await waitFor('the refusal', () => agent.stderr.some((l) => l.includes('not recording')), 5000);
      expect(agent.stderr.filter((l) => l.includes('history:'))).toEqual([expect.stringMatching(/not recording: .*notes\.db is not a SQLite database; flowtop leaves it alone/)]);
      expect(await connectOnce(space.ns, space.cg)).toBe('connected');
      const line = await waitFor('--status saying so', () => {
        const l = statusLine(agent.socket);
        return l.includes('NOT recording') && l;
      }, 5_000);
      expect(line).toMatch(/^  history +NOT recording since \d{4}-\d\d-\d\dT[\d:.]+Z: .*notes\.db is not a SQLite database; .*0 flows written; 0 not written$/);
    } finally {
      await agent.stop();
    }
    expect(readFileSync(path, 'utf8')).toBe(text);
  }, 60_000);
});
