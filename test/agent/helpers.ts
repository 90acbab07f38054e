// Shared fixtures for the agent tests: a compiled agent, a network namespace, a test cgroup, processes
// started inside both, and a protocol client. Everything is real: no mocks.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientMessage, ExtensionMessage } from '../../src/protocol/messages.js';
import { compileProject } from '../setup/compile.js';
import { sharedBuild } from '../setup/shared-build.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SHARED = sharedBuild();
/** The compiled agent: the run's shared build, else one per test process (test files run in parallel
 *  and must not overwrite each other's build). */
export const DIST = SHARED ?? join(ROOT, 'node_modules/.cache', `flowtop-agent-test-${process.pid}`);

/** Why this machine cannot run the agent tests, or undefined when it can. */
export function missingCapability(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, iptables, BPF)';
  for (const tool of ['ip', 'iptables-restore', 'nsenter', 'python3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `needs ${tool} (apt-get install iproute2 iptables util-linux python3)`;
  }
  return undefined;
}

/** Under CI=true a missing capability fails the suite instead of skipping it. */
export function skipUnlessCapable(): boolean {
  const missing = missingCapability();
  if (!missing) return false;
  if (process.env['CI'] === 'true') throw new Error(`agent tests cannot run: ${missing}`);
  process.stderr.write(`skipping agent tests: ${missing}\n`);
  return true;
}

let built = false;
/** The compiled agent (it runs its queue loop in a worker thread, which needs JavaScript): the shared
 *  build, or compiled once for this test process. */
export function buildAgent(): string {
  if (SHARED || (built && existsSync(join(DIST, 'run-agent.mjs')))) return DIST;
  compileProject(DIST);
  built = true;
  return DIST;
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let counter = 0;

export class Netns {
  readonly name = `ftt-${process.pid}-${++counter}`;
  constructor() {
    execFileSync('ip', ['netns', 'add', this.name]);
    execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
    this.sh('sysctl -qw net.ipv4.ip_local_port_range="20000 60000"');
  }
  /** Prefix that runs a command in this namespace without remounting /sys (cgroups stay visible). */
  get enter(): string[] {
    return ['nsenter', `--net=/run/netns/${this.name}`];
  }
  sh(script: string): string {
    return execFileSync('nsenter', [`--net=/run/netns/${this.name}`, 'sh', '-c', script], { encoding: 'utf8' });
  }
  delete(): void {
    spawnSync('ip', ['netns', 'del', this.name]);
  }
}

export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1];
  }
  throw new Error('no cgroup2 mount');
}

/** A cgroup the test creates (never the root): the recorder is attached here. */
export class TestCgroup {
  readonly path = join(cgroup2Root(), `flowtop-test-${process.pid}-${++counter}`);
  constructor() {
    mkdirSync(this.path);
  }
  delete(): void {
    // Move stragglers out, then remove: rmdir releases the programs attached to it.
    try {
      for (const pid of readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try { writeFileSync(join(cgroup2Root(), 'cgroup.procs'), pid); } catch { /* exited */ }
      }
      rmdirSync(this.path);
    } catch { /* already gone */ }
  }
}

/** Runs `argv` inside the namespace and the cgroup: the shell joins the cgroup, then execs. */
export function spawnIn(ns: Netns, cg: TestCgroup | undefined, argv: string[], options: { uid?: number } = {}): ChildProcess {
  const join = cg ? `echo $$ > ${cg.path}/cgroup.procs && ` : '';
  return spawn('sh', ['-c', `${join}exec "$@"`, 'sh', ...ns.enter, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...options });
}

export function lines(child: ChildProcess): { all: string[]; next(pred?: (l: string) => boolean, timeoutMs?: number): Promise<string> } {
  const all: string[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      all.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  let read = 0;
  return {
    all,
    next: (pred = () => true, timeoutMs = 10_000) => waitFor('a line from the child', () => {
      while (read < all.length) {
        const l = all[read++]!;
        if (pred(l)) return l;
      }
      return undefined;
    }, timeoutMs),
  };
}

export interface RunningAgent {
  proc: ChildProcess;
  socket: string;
  dir: string;
  stderr: string[];
  /** Date.now() when the "ready on" line arrived (the firewall was in place before it was written). */
  readyAt: number;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export async function startAgent(ns: Netns, cg: TestCgroup | undefined, flags: string[], dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-')), env: NodeJS.ProcessEnv = process.env): Promise<RunningAgent> {
  chmodSync(dir, 0o755);
  const socket = join(dir, 'agent.sock');
  const rules = join(dir, 'rules.json');
  const dist = buildAgent();
  // Tests share one machine: nothing is recorded into the default history file unless a test asks.
  const history = flags.some((f) => f === '--history' || f.startsWith('--history=') || f === '--no-history') ? [] : ['--no-history'];
  const args = ['agent', '--socket', socket, '--rules', rules, ...(cg ? ['--cgroup', cg.path] : []), ...history, ...flags];
  const proc = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  const stderr: string[] = [];
  let readyAt = 0;
  proc.stderr?.on('data', (d: Buffer) => {
    const got = d.toString().split('\n').filter(Boolean);
    if (readyAt === 0 && got.some((l) => l.includes('ready on'))) readyAt = Date.now();
    stderr.push(...got);
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await waitFor(`the agent to be ready (${stderr.join(' | ')})`, () => {
    if (proc.exitCode !== null) throw new Error(`agent exited: ${stderr.join('\n')}`);
    return stderr.some((l) => l.includes('ready on'));
  }, 20_000);
  return {
    proc, socket, dir, stderr, readyAt,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGCONT'); // a test may have frozen it
      proc.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Removes this process's own build; the shared one is removed when the run ends. */
export function removeBuild(): void {
  if (!SHARED) rmSync(DIST, { recursive: true, force: true });
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A protocol v1 client over the agent's socket. */
export class TestClient {
  readonly messages: ExtensionMessage[] = [];
  private buf = '';
  private readonly socket: net.Socket;
  closed = false;
  error?: string;

  constructor(path: string) {
    this.socket = net.connect(path);
    this.socket.on('data', (d) => {
      this.buf += d.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.messages.push(JSON.parse(this.buf.slice(0, i)) as ExtensionMessage);
        this.buf = this.buf.slice(i + 1);
      }
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    this.socket.on('close', () => (this.closed = true));
  }

  send(m: ClientMessage): void {
    this.socket.write(`${JSON.stringify(m)}\n`);
  }

  async subscribe(): Promise<void> {
    this.send({ type: 'subscribe', protocol: 1, client: { name: 'agent-test', version: '1' } });
    await this.waitFor('hello', (m) => m.type === 'hello');
  }

  waitFor<T extends ExtensionMessage>(what: string, pred: (m: ExtensionMessage) => boolean, timeoutMs = 10_000): Promise<T> {
    return waitFor(what, () => this.messages.find(pred) as T | undefined, timeoutMs);
  }

  flows(pred: (f: Extract<ExtensionMessage, { type: 'flow' }>['flow']) => boolean = () => true): Array<Extract<ExtensionMessage, { type: 'flow' }>['flow']> {
    return this.messages.flatMap((m) => (m.type === 'flow' && pred(m.flow) ? [m.flow] : []));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Host rulesets, to prove the tests never touch the host namespace. */
export function hostRules(): string {
  const parts: string[] = [];
  for (const [cmd, args] of [['nft', ['list', 'ruleset']], ['iptables-save', []], ['ip6tables-save', []]] as const) {
    const r = spawnSync(cmd, [...args], { encoding: 'utf8' });
    parts.push((r.stdout ?? '').split('\n').filter((l) => !l.startsWith('#')).join('\n').replace(/\[\d+:\d+\]/g, ''));
  }
  return parts.join('\n----\n');
}

/** A TCP server in the namespace that accepts and keeps connections; resolves once it listens. */
export async function startServer(ns: Netns, port: number, protocol: 'tcp' | 'udp' = 'tcp'): Promise<ChildProcess> {
  const code = protocol === 'tcp'
    ? `const s=require('net').createServer(c=>c.on('error',()=>{})).listen(${port},'127.0.0.1',()=>console.log('ready'));`
    : `const s=require('dgram').createSocket('udp4');s.on('message',()=>{});s.bind(${port},'127.0.0.1',()=>console.log('ready'));`;
  const child = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lines(child).next((l) => l === 'ready');
  return child;
}

/** Node one-liner that connects to 127.0.0.1:port, prints its pid, then "connected"/"error CODE"/"timeout",
 *  and stays alive until stdin closes. */
export function connectScript(port: number, timeoutMs = 5000): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const t0 = Date.now();
    const s = require('net').connect(${port}, '127.0.0.1');
    const timer = setTimeout(() => { console.log('timeout', Date.now() - t0); s.destroy(); }, ${timeoutMs});
    s.on('connect', () => { clearTimeout(timer); console.log('connected', Date.now() - t0); });
    s.on('error', (e) => { clearTimeout(timer); console.log('error', e.code, Date.now() - t0); });
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
  `];
}

/** The agent started as the leader of its own process group (as a shell starts a job), so a test can
 *  signal the whole group the way a terminal's Ctrl-C does: with --fail-closed, no history, its rules
 *  file in `dir`. */
export async function startAgentJob(ns: Netns, cg: TestCgroup, dir: string, queue: number): Promise<{ proc: ChildProcess; socket: string; exited: Promise<void>; stderr: string[] }> {
  const socket = join(dir, 'agent.sock');
  const proc = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(DIST, 'run-agent.mjs'), 'agent', '--no-history', '--socket', socket,
    '--rules', join(dir, 'rules.json'), '--cgroup', cg.path, '--queue-num', String(queue), '--fail-closed', '--timeout', '1s'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const stderr: string[] = [];
  proc.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  await waitFor(`the agent to be ready (${stderr.join('')})`, () => {
    if (proc.exitCode !== null) throw new Error(`agent exited: ${stderr.join('')}`);
    return stderr.join('').includes('ready on');
  }, 30_000);
  return { proc, socket, exited, stderr };
}

/** An agent put together by a test's own script (the agent's classes with options the CLI does not
 *  offer), run in the namespace from the test build (`dist`, from buildAgent) with its socket, rules
 *  file, cgroup and queue number as arguments; resolves once it says it is ready. `onStdout` hears
 *  each line the script writes. `stop` ends it with SIGTERM and waits for its exit. */
export async function startScriptedAgent(ns: Netns, dist: string, script: { name: string; source: string }, args: { dir: string; cgroup: string; queue: number }, onStdout?: (line: string) => void): Promise<{ proc: ChildProcess; stderr: string[]; stop(): Promise<void> }> {
  writeFileSync(join(dist, script.name), script.source);
  const proc = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(dist, script.name), join(args.dir, 'agent.sock'), join(args.dir, 'rules.json'), args.cgroup, String(args.queue)],
    { stdio: ['ignore', onStdout ? 'pipe' : 'ignore', 'pipe'] });
  const stderr: string[] = [];
  proc.stderr?.on('data', (d: Buffer) => stderr.push(...d.toString().split('\n').filter(Boolean)));
  if (onStdout) {
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        onStdout(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  await waitFor(`the agent to be ready (${stderr.join(' | ')})`, () => {
    if (proc.exitCode !== null) throw new Error(`agent exited: ${stderr.join('\n')}`);
    return stderr.some((l) => l.includes('ready on'));
  }, 20_000);
  return {
    proc,
    stderr,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
