// The command line as a person meets it: the installed CLI run as a child process (and on a real
// pseudo-terminal for the TUI), as root and as nobody.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerCredentials } from '../../src/native/linux/peercred.js';
import { ExtensionServer } from '../../src/protocol/server.js';
import { hello } from '../protocol/samples.js';
import { install, type Installation } from './install.js';
import { PtyProcess, terminalEnv } from '../journey/pty.js';

const NOBODY = { uid: 65534, gid: 65534 };
let inst: Installation;
let work: string;

/** These tests run the CLI as nobody (setpriv) and in a mount namespace (unshare): root only. */
function missing(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root (setpriv to nobody, unshare -m)';
  for (const tool of ['python3', 'setpriv', 'unshare', 'bash']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool}`;
  }
  return undefined;
}
const why = missing();
if (why && process.env['CI'] === 'true') throw new Error(`CLI tests cannot run: ${why}`);
const suite = why ? describe.skip : describe;

beforeAll(() => {
  if (why) return;
  inst = install();
  work = mkdtempSync(join(tmpdir(), 'flowtop-cli-'));
  chmodSync(work, 0o755);
}, 120_000);
afterAll(() => {
  inst?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

function flowtop(args: string[], env: NodeJS.ProcessEnv = {}, user?: { uid: number; gid: number }) {
  const argv = user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...inst.flowtop, ...args] : [...inst.flowtop, ...args];
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', cwd: work, env: { ...terminalEnv(), ...env }, timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tui(args: string[], options: { env?: NodeJS.ProcessEnv; user?: { uid: number; gid: number }; cols?: number } = {}): PtyProcess {
  return new PtyProcess([...inst.flowtop, ...args], { cols: options.cols ?? 140, rows: 30, env: terminalEnv(options.env), cwd: work, user: options.user });
}

suite('bad command lines', () => {
  const cases: Array<[string[], RegExp, string]> = [
    [['--bogus'], /^flowtop: unknown flag --bogus$/, 'flowtop --help'],
    [['--socket'], /^flowtop: --socket needs a value$/, 'flowtop --help'],
    [['--ascii=yes'], /^flowtop: --ascii takes no value$/, 'flowtop --help'],
    [['list', '--json', '--bogus'], /^flowtop: list: unknown flag --bogus$/, 'flowtop list --help'],
    [['list', '--json', '--socket'], /^flowtop: list: --socket needs a value$/, 'flowtop list --help'],
    [['rules', 'list', '--bogus'], /^flowtop: rules: unknown flag --bogus$/, 'flowtop rules --help'],
    [['rules', 'list', '--socket'], /^flowtop: rules: --socket needs a value$/, 'flowtop rules --help'],
    [['agent', '--status', '--socket'], /^flowtop: agent: --socket needs a value$/, 'flowtop agent --help'],
    [['agent', '--bogus'], /^flowtop: agent: unknown flag --bogus$/, 'flowtop agent --help'],
    [['demo', '--speed'], /^flowtop: demo: --speed needs a value$/, 'flowtop demo --help'],
    [['inspect', '--token'], /^flowtop: inspect: --token needs a value$/, 'flowtop inspect --help'],
    [['history', '--bogus'], /^flowtop: history: unknown flag --bogus$/, 'flowtop history --help'],
    [['history', '--process'], /^flowtop: history: --process needs a value$/, 'flowtop history --help'],
    [['history', '--since', 'yesterday'], /^flowtop: history: --since must be a duration \(24h, 7d, 30m\) or a date/, 'flowtop history --help'],
    [['history', '--action', 'deny'], /^flowtop: history: --action must be allow or block, got "deny"$/, 'flowtop history --help'],
    [['history', '--host', 'a', '--domain', 'b'], /^flowtop: history: choose one of --host and --domain$/, 'flowtop history --help'],
    [['history', '--json', '--csv'], /^flowtop: history: choose one of --json and --csv$/, 'flowtop history --help'],
    [['history', 'top', '--by', 'colour'], /^flowtop: history top: --by must be process, host, domain or user, got "colour"$/, 'flowtop history --help'],
    [['history', 'top', '--since', '2h', '--until', '3h'], /^flowtop: history top: --until must be later than --since$/, 'flowtop history --help'],
    [['history', 'events', '--limit', '0'], /^flowtop: history events: --limit must be an integer/, 'flowtop history --help'],
    [['history', 'events', '--by', 'host'], /^flowtop: history events: unknown flag --by$/, 'flowtop history events --help'],
  ];
  it.each(cases)('flowtop %j: one line saying what is wrong, a usage hint, exit 2', (args, first, help) => {
    const r = flowtop(args);
    const lines = r.err.trimEnd().split('\n');
    expect(lines[0], r.err).toMatch(first);
    expect(lines[1]).toBe(`  run \`${help}\` for the usage`);
    expect(lines).toHaveLength(2);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
  });
});

suite('history as a person reads it', () => {
  /** A history file as the agent leaves it: 0640 root:flowtop in a 0750 root:flowtop folder. */
  async function agentFile(): Promise<string> {
    const { closeHistoryDatabase, openHistoryDatabase } = await import('../../src/history/schema.js');
    const { HistoryWriter } = await import('../../src/history/writer.js');
    const { ensureGroup } = await import('../../src/agent/authorize.js');
    const gid = ensureGroup().gid;
    const dir = mkdtempSync(join(work, 'var-lib-flowtop-'));
    const path = join(dir, 'history.db');
    const db = openHistoryDatabase(path);
    const writer = new HistoryWriter(db);
    const now = Date.now();
    const curl = { key: 'sha256:' + 'a'.repeat(64), name: 'curl', path: '/usr/bin/curl', trust: 0 };
    const evil = { key: 'path:/tmp/x', name: 'evil\u001b[31m', path: '/tmp/x', trust: 1 };
    writer.write({
      rows: [
        { ref: 1, start: now - 60_000, end: now - 59_000, facts: curl, uid: 1000, kind: 0, raddr: '93.184.216.34', rport: 443, host: 'www.example.com', verdict: 1 | (2 << 2), rx: 5000, tx: 400 },
        { ref: 2, start: now - 30_000, facts: evil, uid: 1000, kind: 1, raddr: '198.51.100.9', rport: 53, verdict: 2 | (1 << 2), rule: 'r-block' },
      ],
      changes: [],
      processes: [{ minute: Math.floor((now - 60_000) / 60_000), key: curl.key, facts: curl, uid: 1000, rx: 5000, tx: 400, flows: 1 }],
      hosts: [{ minute: Math.floor((now - 60_000) / 60_000), host: 'www.example.com', rx: 5000, tx: 400, flows: 1 }],
    });
    closeHistoryDatabase(db);
    for (const f of [dir, path]) spawnSync('chown', [`root:${gid}`, f]);
    chmodSync(dir, 0o750);
    chmodSync(path, 0o640);
    return path;
  }

  it('lists, filters, ranks and lists events, as a table, JSON and CSV; names are never terminal escapes', async () => {
    const db = await agentFile();
    const list = flowtop(['history', '--db', db]);
    expect(list.code, list.err).toBe(0);
    expect(list.out).toMatch(/^TIME +ACTION +BY +PROCESS/);
    expect(list.out).toMatch(/allow +user +curl +1000 +tcp +www\.example\.com:443 +4\.9K +400B/);
    expect(list.out).toMatch(/block +rule r-block +evil\?\[31m \(insecure\)/);
    expect(list.out).not.toContain('\u001b');
    const blocked = JSON.parse(flowtop(['history', '--db', db, '--action', 'block', '--json']).out) as Array<{ rule: string }>;
    expect(blocked.map((f) => f.rule)).toEqual(['r-block']);
    expect(JSON.parse(flowtop(['history', '--db', db, '--domain', 'example.com', '--json']).out)).toHaveLength(1);
    const csv = flowtop(['history', '--db', db, '--process', 'curl', '--csv']).out.trim().split('\n');
    expect(csv[0]).toBe('start,end,action,by,rule,decider,process,path,identity,trust,uid,parent,protocol,direction,remote,port,host,rx,tx');
    expect(csv).toHaveLength(2);
    const top = flowtop(['history', 'top', '--by', 'process', '--since', '7d', '--db', db]);
    expect(top.out).toMatch(/^PROCESS +RX +TX +FLOWS +IDENTITY\ncurl +4\.9K +400B +1 +sha256:a{64}\n$/);
    expect(flowtop(['history', 'top', '--by', 'domain', '--db', db]).out).toMatch(/example\.com +4\.9K/);
    const events = flowtop(['history', 'events', '--db', db]).out;
    expect(events).toMatch(/first-seen +\/usr\/bin\/curl connected for the first time/);
    expect(events).toMatch(/rule-blocking +rule r-block blocked its first connection/);
  }, 60_000); // eight runs of the CLI: seconds each on a loaded machine

  it('group flowtop reads the agent\'s file; anyone else is told how to join', async () => {
    const db = await agentFile();
    const gid = Number(spawnSync('getent', ['group', 'flowtop'], { encoding: 'utf8' }).stdout.split(':')[2]);
    const member = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', `--groups=${gid}`, '--', ...inst.flowtop, 'history', '--db', db, '--json'], { encoding: 'utf8', cwd: work, env: terminalEnv(), timeout: 20_000 });
    expect(member.status, member.stderr).toBe(0);
    expect(JSON.parse(member.stdout)).toHaveLength(2);
    const other = flowtop(['history', '--db', db], {}, NOBODY);
    expect(other.code).toBe(1);
    expect(other.err).toMatch(/^flowtop: history: .*history\.db/);
    expect(other.err).toContain('sudo usermod -aG flowtop $USER');
    // The file itself unreadable in a folder anyone may enter: the same words, never a stack trace.
    chmodSync(join(db, '..'), 0o755);
    const file = flowtop(['history', '--db', db], {}, NOBODY);
    expect(file.code).toBe(1);
    expect(file.err).toMatch(/^flowtop: history: .*history\.db: permission denied\n  .*sudo usermod -aG flowtop \$USER/);
  });

  it('a file that is not a history is refused, left as it was', () => {
    const file = join(work, 'not-history.db');
    writeFileSync(file, 'hello\n'.repeat(10));
    const r = flowtop(['history', '--db', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/not a SQLite database; flowtop leaves it alone/);
    expect(readFileSync(file, 'utf8')).toBe('hello\n'.repeat(10));
  });
});

suite('rules add without a process or a remote', () => {
  it('is refused unless --any, and nothing is created', () => {
    const file = join(work, 'any-rules.json');
    for (const flags of [['--allow'], ['--block', '--protocol', 'udp']]) {
      const r = flowtop(['rules', 'add', ...flags, '--rules', file]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(/names no process and no remote.*add --any/);
      expect(existsSync(file)).toBe(false);
    }
    const both = flowtop(['rules', 'add', '--allow', '--any', '--host', 'example.com', '--rules', file]);
    expect(both.code).toBe(2);
    expect(existsSync(file)).toBe(false);
    const any = flowtop(['rules', 'add', '--allow', '--any', '--rules', file]);
    expect(any.code, any.err).toBe(0);
    expect(any.out).toMatch(/^added r[0-9a-f]{12}: allow any process → anywhere, always/);
    expect(existsSync(file)).toBe(true);
  });
});

suite('pipes and unreachable sources', () => {
  it('`flowtop rules list | head -1` ends quietly when the reader goes away', async () => {
    const file = join(work, 'many-rules.json');
    const rules = Array.from({ length: 4000 }, (_, i) => ({
      id: `r${i.toString(16).padStart(12, '0')}`, action: 'allow', duration: { kind: 'always' }, endpoint: { host: `h${i}.example` }, created: 0, hits: 0, enabled: true,
    }));
    writeFileSync(file, JSON.stringify({ version: 1, policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false }, rules }));
    const r = spawnSync('bash', ['-c', '"$@" 2>"$ERR" | head -1; echo "status ${PIPESTATUS[0]}"', 'bash', ...inst.flowtop, 'rules', 'list', '--rules', file], { encoding: 'utf8', env: { ...terminalEnv(), ERR: join(work, 'pipe.err') } });
    expect(r.stdout).toBe(`4000 rules (${file})\nstatus 0\n`);
    expect(spawnSync('cat', [join(work, 'pipe.err')], { encoding: 'utf8' }).stdout).toBe('');
  });

  it('`flowtop list --json` with nothing reachable says so and exits 1 (no empty list)', () => {
    const r = flowtop(['list', '--json', '--wait', '300', '--socket', join(work, 'nothing-here.sock')]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain(`nothing to show: could not reach ${join(work, 'nothing-here.sock')} (no extension socket at`);
  });
});

suite('NO_COLOR and a non-UTF-8 locale in text commands', () => {
  it('`rules list` prints ASCII where the terminal cannot show arrows; --json and export stay exact', () => {
    const file = join(work, 'ascii-rules.json');
    expect(flowtop(['rules', 'add', '--block', '--host', 'tracker.example', '--note', 'naïve → note', '--rules', file]).code).toBe(0);
    const utf8 = flowtop(['rules', 'list', '--rules', file]);
    expect(utf8.out).toContain('→');
    for (const env of [{ NO_COLOR: '1' }, { LANG: 'C', LC_ALL: 'C' }]) {
      const r = flowtop(['rules', 'list', '--rules', file], env);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('tracker.example');
      expect(r.out).toMatch(/^[\x00-\x7f]*$/);
      expect(flowtop(['rules', 'list', '--json', '--rules', file], env).out).toContain('naïve → note');
      expect(flowtop(['rules', 'export', '--rules', file], env).out).toContain('naïve → note');
    }
  });
});

suite('NO_COLOR and --ascii in the TUI', () => {
  const COLOUR = /(^|;)(3[0-9]|4[0-9]|9[0-7]|10[0-7]|38|48)(;|$)/;
  const colours = (t: PtyProcess) => [...t.screen.sgrSeen].filter((p) => COLOUR.test(p));

  it('colour by default; none at all with NO_COLOR=1, while the cursor row stays marked', async () => {
    const plain = tui(['--demo']);
    const coloured = tui(['--demo'], { env: { NO_COLOR: '1' } });
    try {
      await plain.waitForText(/Spotify|Slack|Mail/);
      await coloured.waitForText(/Spotify|Slack|Mail/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(colours(plain).length).toBeGreaterThan(0);
      expect(colours(coloured)).toEqual([]);
      expect([...coloured.screen.sgrSeen].some((p) => /(^|;)7(;|$)/.test(p))).toBe(true); // inverse: the selected row
    } finally {
      plain.kill();
      coloured.kill();
    }
  });

  it('--ascii draws nothing but ASCII, truncation marks included', async () => {
    const t = tui(['--demo', '--ascii'], { cols: 90 });
    try {
      await t.waitForText(/Spotify|Slack|Mail/);
      await new Promise((r) => setTimeout(r, 1500));
      const wide = [...t.screen.drawn].filter((ch) => ch.codePointAt(0)! > 0x7e);
      expect(wide).toEqual([]);
      expect(t.screen.text()).toContain('~'); // the header is cut at 90 columns, marked with ~
    } finally {
      t.kill();
    }
  });
});

suite('a socket this user may not use', () => {
  let server: ExtensionServer | undefined;
  afterAll(async () => server?.close());

  it('explicit --socket, permission denied: said once with the fix, never "reconnecting"', async () => {
    const path = join(work, 'private.sock');
    const s = new ExtensionServer({ path, hello });
    await s.listen();
    chmodSync(path, 0o600);
    try {
      const t = tui(['--socket', path], { user: NOBODY, cols: 200 });
      try {
        await t.waitForText('permission denied (sudo usermod -aG flowtop $USER, then log in again)');
        await new Promise((r) => setTimeout(r, 2500));
        expect(t.output()).not.toContain('reconnecting');
      } finally {
        t.kill();
      }
      const listed = flowtop(['list', '--json', '--wait', '300', '--socket', path], {}, NOBODY);
      expect(listed.code).toBe(1);
      expect(listed.err).toContain(`could not reach ${path} (permission denied (sudo usermod -aG flowtop $USER, then log in again))`);
    } finally {
      await s.close();
    }
  });

  it('explicit --socket, the agent refuses this user: said once with the fix', async () => {
    const path = join(work, 'refusing.sock');
    server = new ExtensionServer({ path, hello, socketMode: 0o666, peerCredentials, authorize: (c) => (c.peer?.uid === 0 ? true : 'not in group flowtop') });
    await server.listen();
    const t = tui(['--socket', path], { user: NOBODY, cols: 200 });
    try {
      await t.waitForText('the agent refused this user (sudo usermod -aG flowtop $USER, then log in again)');
      await new Promise((r) => setTimeout(r, 2500));
      expect(t.output()).not.toContain('reconnecting');
    } finally {
      t.kill();
    }
  });

  it('the passive monitor records what it sees into the user\'s history file; `history` reads it back', async () => {
    const state = mkdtempSync(join(work, 'state-'));
    const server = net.createServer((c) => c.on('error', () => {}).write('x'.repeat(3000)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    client.on('data', () => {});
    // A private, empty /run: no agent at the default socket, so the TUI runs the passive monitor.
    const t = new PtyProcess(['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /run && exec "$@"', 'sh', ...inst.flowtop], {
      cols: 200, rows: 30, cwd: work, env: terminalEnv({ XDG_STATE_HOME: state }),
    });
    try {
      await t.waitForText('passive monitor');
      await t.waitForText(`:${port}`);
      await new Promise((r) => setTimeout(r, 1500)); // a poll's byte counters
      t.write('q');
      const code = await t.waitForExit();
      expect(code, t.output().slice(-3000)).toBe(0);
    } finally {
      t.kill();
      client.destroy();
      server.close();
    }
    const db = join(state, 'flowtop/history.db');
    expect(statSync(db).mode & 0o777).toBe(0o600);
    const r = flowtop(['history', '--db', db, '--host', '127.0.0.1', '--json']);
    expect(r.code, r.err).toBe(0);
    const flows = JSON.parse(r.out) as Array<{ remote: { port: number }; action: string; rx?: number }>;
    const mine = flows.filter((f) => f.remote.port === port);
    expect(mine.length).toBeGreaterThanOrEqual(1);
    expect(mine[0]!.action).toBe('observed');
  }, 60_000);

  it('a connection still open when flowtop quits and starts again is one flow in the history, not two', async () => {
    const state = mkdtempSync(join(work, 'state-'));
    const server = net.createServer((c) => c.on('error', () => {}).write('x'.repeat(2000)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    client.on('data', () => {});
    const db = join(state, 'flowtop/history.db');
    const mine = () => {
      const r = flowtop(['history', '--db', db, '--host', '127.0.0.1', '--json']);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as Array<{ start: number; end?: number; remote: { port: number }; rx?: number }>).filter((f) => f.remote.port === port);
    };
    // Two runs of the TUI's passive monitor (a private, empty /run: no agent), the connection open
    // through both.
    const run = async (): Promise<void> => {
      const t = new PtyProcess(['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /run && exec "$@"', 'sh', ...inst.flowtop], {
        cols: 200, rows: 30, cwd: work, env: terminalEnv({ XDG_STATE_HOME: state }),
      });
      try {
        await t.waitForText('passive monitor');
        await t.waitForText(`:${port}`);
        await new Promise((r) => setTimeout(r, 1500)); // a poll's byte counters; the row written
        t.write('q');
        expect(await t.waitForExit(), t.output().slice(-3000)).toBe(0);
      } finally {
        t.kill();
      }
    };
    try {
      await run();
      const first = mine();
      expect(first).toHaveLength(1);
      expect(first[0]!.end).toBeUndefined();
      await run();
      const after = mine();
      expect(after).toHaveLength(1); // the same flow, continued
      expect(after[0]!.start).toBe(first[0]!.start);
      expect(after[0]!.rx).toBe(2000);
      // Its start minute counts each connection to that host once: the buckets agree with the rows.
      const minute = Math.floor(first[0]!.start / 60_000);
      const file = new Database(db, { readonly: true });
      try {
        const counted = file.prepare("SELECT sum(t.flows) AS n FROM host_traffic t JOIN hosts h ON h.id = t.host WHERE t.minute = ? AND h.name = '127.0.0.1'").get(minute) as { n: number };
        const rows = file.prepare("SELECT count(*) AS n FROM flows f JOIN addrs a ON a.id = f.raddr WHERE a.addr = '127.0.0.1' AND f.host IS NULL AND f.start >= ? AND f.start < ?").get(minute * 60_000, (minute + 1) * 60_000) as { n: number };
        expect(counted.n).toBe(rows.n);
      } finally {
        file.close();
      }
    } finally {
      client.destroy();
      server.close();
    }
    // Ended after both runs: a third run is not needed to say it; the row stays one.
    expect(mine()).toHaveLength(1);
  }, 90_000);

  it('two flowtops of one user: one records each flow; when it quits the other takes over the recording', async () => {
    const state = mkdtempSync(join(work, 'state-'));
    const server = net.createServer((c) => c.on('error', () => {}).write('x'.repeat(1000)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const db = join(state, 'flowtop/history.db');
    const rowsTo = (remotePort: number): number => {
      const r = flowtop(['history', '--db', db, '--host', '127.0.0.1', '--json']);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as Array<{ remote: { port: number } }>).filter((f) => f.remote.port === remotePort).length;
    };
    const tui = (): PtyProcess => new PtyProcess(['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /run && exec "$@"', 'sh', ...inst.flowtop], {
      cols: 200, rows: 30, cwd: work, env: terminalEnv({ XDG_STATE_HOME: state }),
    });
    const first = tui();
    await first.waitForText('passive monitor');
    const second = tui();
    const clients: net.Socket[] = [];
    const connect = (): void => {
      const c = net.connect(port, '127.0.0.1');
      c.on('data', () => {});
      clients.push(c);
    };
    try {
      await second.waitForText('passive monitor');
      connect();
      await new Promise<void>((r) => clients[0]!.once('connect', () => r()));
      const firstPort = clients[0]!.localPort!;
      await first.waitForText(`:${firstPort}`);
      await second.waitForText(`:${firstPort}`);
      await new Promise((r) => setTimeout(r, 1500)); // both have seen it long enough to record it
      // Seen by both, recorded once: the outbound end (the server's end is the other row).
      expect(rowsTo(port)).toBe(1);
      first.write('q');
      expect(await first.waitForExit(), first.output().slice(-2000)).toBe(0);
      // The second takes over within its 5 s retry, and records what opens after that.
      await new Promise((r) => setTimeout(r, 6000));
      connect();
      await new Promise<void>((r) => clients[1]!.once('connect', () => r()));
      await second.waitForText(`:${clients[1]!.localPort!}`);
      await new Promise((r) => setTimeout(r, 1500));
      expect(rowsTo(port)).toBe(2);
      second.write('q');
      expect(await second.waitForExit(), second.output().slice(-2000)).toBe(0);
      expect(second.output()).toMatch(/history: this flowtop recorded from .*, when the other one that recorded quit/);
    } finally {
      first.kill();
      second.kill();
      for (const c of clients) c.destroy();
      server.close();
    }
  }, 90_000);

  it('the default socket: the passive monitor, with a banner saying how to join', async () => {
    // A private /run (mount namespace) holds a root-only agent socket at the default path.
    const serverScript = `import(${JSON.stringify(join(inst.dir, 'dist/protocol/server.js'))}).then(async ({ ExtensionServer }) => {
      const s = new ExtensionServer({ path: '/run/flowtop/flowtop.sock', hello: ${JSON.stringify(hello)}, socketMode: 0o660 });
      await s.listen(); console.log('ready'); })`;
    const pidFile = join(work, 'default-server.pid');
    const script = `mount -t tmpfs tmpfs /run && mkdir -p /run/flowtop && { "$NODE" -e "$SERVER" > /run/ready & echo $! > "$PIDFILE"; } &&
      while ! grep -q ready /run/ready 2>/dev/null; do sleep 0.05; done &&
      exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"`;
    const t = new PtyProcess(['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...inst.flowtop], {
      cols: 160, rows: 30, cwd: work, env: terminalEnv({ NODE: process.execPath, SERVER: serverScript, PIDFILE: pidFile }),
    });
    try {
      await t.waitForText('the agent at /run/flowtop/flowtop.sock is for root and group flowtop; to join: sudo usermod -aG flowtop $USER, then log in again');
      await t.waitForText('passive monitor');
      expect(t.output()).not.toContain('reconnecting');
      expect(t.output()).not.toContain('permission denied');
    } finally {
      t.kill();
      if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    }
  });
});
