// The world a journey walks through: an installed flowtop, a network namespace with servers, the
// real agent started through the CLI (`flowtop agent`), programs that connect, and the CLI beside
// them. Everything is a real process; nothing is mocked.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, TestCgroup, lines, spawnIn, startServer, waitFor } from '../agent/helpers.js';
import { install, type Installation } from '../cli/install.js';
import { PtyProcess, terminalEnv } from './pty.js';

export interface Agent {
  proc: ChildProcess;
  stderr: string[];
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** A program in the namespace that connects and reports what it saw ("connected", "error CODE",
 *  "timeout"), then stays until told to close. */
export interface Program {
  proc: ChildProcess;
  pid: number;
  outcome(timeoutMs?: number): Promise<string>;
  close(): void;
}

export class World {
  readonly inst: Installation;
  readonly ns = new Netns();
  readonly cg = new TestCgroup();
  readonly dir = mkdtempSync(join(tmpdir(), 'flowtop-journey-'));
  readonly socket: string;
  readonly rules: string;
  private readonly children: ChildProcess[] = [];
  private readonly ptys: PtyProcess[] = [];

  constructor() {
    chmodSync(this.dir, 0o755);
    this.socket = join(this.dir, 'agent.sock');
    this.rules = join(this.dir, 'rules.json');
    this.inst = install();
  }

  async servers(tcpPorts: number[], udpPorts: number[]): Promise<void> {
    for (const port of tcpPorts) this.children.push(await startServer(this.ns, port, 'tcp'));
    for (const port of udpPorts) this.children.push(await startServer(this.ns, port, 'udp'));
  }

  /** `flowtop agent` in the namespace, attached to the test cgroup; resolves once it is ready. */
  async startAgent(flags: string[] = []): Promise<Agent> {
    // No history unless the journey asks for one (--history PATH).
    const args = ['agent', ...(flags.includes('--history') ? [] : ['--no-history']), '--socket', this.socket, '--rules', this.rules, '--cgroup', this.cg.path, ...flags];
    const proc = spawn(this.ns.enter[0] as string, [...this.ns.enter.slice(1), ...this.inst.flowtop, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(proc);
    const stderr: string[] = [];
    proc.stderr?.on('data', (d: Buffer) => stderr.push(...d.toString().split('\n').filter(Boolean)));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    await waitFor(`the agent to be ready (${stderr.join(' | ')})`, () => {
      if (proc.exitCode !== null) throw new Error(`the agent exited: ${stderr.join('\n')}`);
      return stderr.some((l) => l.includes('ready on'));
    }, 30_000);
    return {
      proc, stderr, exited,
      stop: async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        return exited;
      },
    };
  }

  /** A second `flowtop agent` as a one-shot command: its exit status and what it said. */
  runAgentOnce(flags: string[], timeoutMs = 20_000): { code: number | null; err: string } {
    const r = spawnSync(this.ns.enter[0] as string, [...this.ns.enter.slice(1), ...this.inst.flowtop, 'agent', ...flags], { encoding: 'utf8', timeout: timeoutMs, env: terminalEnv() });
    return { code: r.status, err: r.stderr };
  }

  /** node in the namespace and the test cgroup, connecting to 127.0.0.1:port over TCP. */
  async connect(port: number, options: { uid?: number; timeoutMs?: number } = {}): Promise<Program> {
    const timeout = options.timeoutMs ?? 30_000;
    const code = `
      console.log('pid', process.pid);
      const s = require('net').connect(${port}, '127.0.0.1');
      const timer = setTimeout(() => { console.log('timeout'); s.destroy(); }, ${timeout});
      s.on('connect', () => { clearTimeout(timer); console.log('connected'); });
      s.on('error', (e) => { clearTimeout(timer); console.log('error', e.code); });
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
    return this.program([process.execPath, '-e', code], options.uid);
  }

  /** node in the namespace that connects to 127.0.0.1:port each time `again()` is called: one process
   *  instance making several connections. */
  async client(port: number): Promise<Program & { again(): Promise<string> }> {
    const code = `
      console.log('pid', process.pid);
      const go = () => {
        const s = require('net').connect(${port}, '127.0.0.1');
        const timer = setTimeout(() => { console.log('timeout'); s.destroy(); }, 30000);
        s.on('connect', () => { clearTimeout(timer); console.log('connected'); });
        s.on('error', (e) => { clearTimeout(timer); console.log('error', e.code); });
      };
      go();
      require('readline').createInterface({ input: process.stdin }).on('line', go).on('close', () => process.exit(0));`;
    const prog = await this.program([process.execPath, '-e', code]);
    return {
      ...prog,
      again: () => {
        prog.proc.stdin?.write('go\n');
        return prog.outcome();
      },
    };
  }

  /** python3 in the namespace: a different executable, so a rule for node does not cover it. */
  async connectPython(port: number): Promise<Program> {
    const code = [
      'import socket, sys, os',
      'print("pid", os.getpid(), flush=True)',
      's = socket.socket()',
      's.settimeout(30)',
      'try:',
      `    s.connect(("127.0.0.1", ${port})); print("connected", flush=True)`,
      'except socket.timeout:',
      '    print("timeout", flush=True)',
      'except OSError as e:',
      '    import errno; print("error", errno.errorcode.get(e.errno, e.errno), flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    return this.program(['python3', '-c', code]);
  }

  /** node sending `count` UDP datagrams to 127.0.0.1:port from one socket, one every 100 ms. */
  async sendUdp(port: number, count: number): Promise<Program> {
    const code = `
      console.log('pid', process.pid);
      const s = require('dgram').createSocket('udp4');
      let n = 0;
      const t = setInterval(() => { s.send('hello ' + n, ${port}, '127.0.0.1'); if (++n >= ${count}) { clearInterval(t); console.log('sent'); } }, 100);
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
    return this.program([process.execPath, '-e', code]);
  }

  private async program(argv: string[], uid?: number): Promise<Program> {
    const proc = spawnIn(this.ns, this.cg, argv, uid !== undefined ? { uid } : {});
    this.children.push(proc);
    const out = lines(proc);
    const pid = Number((await out.next((l) => l.startsWith('pid '))).slice(4));
    return {
      proc, pid,
      outcome: (timeoutMs = 30_000) => out.next((l) => l === 'connected' || l === 'timeout' || l === 'sent' || l.startsWith('error'), timeoutMs),
      close: () => proc.stdin?.end(),
    };
  }

  /** The installed CLI, run to completion: `flowtop ARGS`. */
  cli(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string; err: string } {
    const r = spawnSync(this.inst.flowtop[0] as string, [...this.inst.flowtop.slice(1), ...args], { encoding: 'utf8', timeout: 30_000, env: terminalEnv(env), cwd: this.dir });
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  /** The TUI on a real pseudo-terminal: `flowtop ARGS`. */
  tui(args: string[], options: { cols?: number; rows?: number; env?: NodeJS.ProcessEnv; user?: { uid: number; gid: number } } = {}): PtyProcess {
    const t = new PtyProcess([...this.inst.flowtop, ...args], { cols: options.cols ?? 160, rows: options.rows ?? 40, env: terminalEnv(options.env), cwd: this.dir, user: options.user });
    this.ptys.push(t);
    return t;
  }

  async close(): Promise<void> {
    for (const t of this.ptys) t.kill();
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 200));
    this.ns.delete();
    this.cg.delete();
    this.inst.remove();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What a journey holds while it runs (its TUI and programs come and go in its tests). */
export interface Journey {
  world: World;
  agent: Agent;
}

/** A journey's start: the world, its TCP and UDP servers, and the agent started with the flags
 *  `agentFlags` gives for that world (e.g. a history file in its folder). A start that fails removes
 *  what it made. */
export async function openJourney(o: { tcp: number[]; udp?: number[]; agentFlags: (world: World) => string[] }): Promise<Journey> {
  const world = new World();
  try {
    await world.servers(o.tcp, o.udp ?? []);
    return { world, agent: await world.startAgent(o.agentFlags(world)) };
  } catch (error) {
    await world.close();
    throw error;
  }
}

/** A journey's end: its programs closed, its TUI and agent stopped, the world removed. */
export async function closeJourney(j: { world?: World; agent?: Agent; tui?: PtyProcess; programs: readonly Program[] }): Promise<void> {
  for (const p of j.programs) p.close();
  j.tui?.kill();
  await j.agent?.stop();
  await j.world?.close();
}
