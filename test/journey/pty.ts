// Drives a real program on a real pseudo-terminal (python3's pty module through pty-host.py: no
// native npm dependency): fixed size, keys in, raw bytes out, and a VirtualScreen kept from them.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualScreen } from './screen.js';

const HOST = fileURLToPath(new URL('./pty-host.py', import.meta.url));

export const KEY = {
  up: '\x1b[A',
  down: '\x1b[B',
  enter: '\r',
  escape: '\x1b',
  ctrlC: '\x03',
  backspace: '\x7f',
} as const;

export interface PtyOptions {
  cols?: number;
  rows?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user (setpriv --reuid/--regid/--clear-groups). */
  user?: { uid: number; gid: number };
}

/** The environment of a person at a terminal: no CI markers (Ink draws differently under CI). */
/** Where TUIs under test keep their history (never the tester's own ~/.local/state): one folder per
 *  test process that any user may write, as /tmp (the TUI also runs as nobody). */
function testStateHome(): string {
  const dir = join(tmpdir(), `flowtop-test-state-${process.pid}`);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o1777);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return dir;
}

export function terminalEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'CI' || k.startsWith('CI_') || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('VITEST') || k === 'NODE_ENV' || k === 'FORCE_COLOR' || k === 'NO_COLOR') continue;
    env[k] = v;
  }
  return { ...env, XDG_STATE_HOME: testStateHome(), TERM: 'xterm-256color', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...extra };
}

export class PtyProcess {
  readonly screen: VirtualScreen;
  readonly raw: Buffer[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private stderr = '';
  exitCode: number | null | undefined;

  constructor(argv: string[], options: PtyOptions = {}) {
    const cols = options.cols ?? 120;
    const rows = options.rows ?? 30;
    this.screen = new VirtualScreen(cols, rows);
    const user = options.user ? ['setpriv', `--reuid=${options.user.uid}`, `--regid=${options.user.gid}`, '--clear-groups', '--'] : [];
    this.child = spawn('python3', [HOST, String(cols), String(rows), ...user, ...argv], {
      env: options.env ?? terminalEnv(),
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => {
      this.raw.push(d);
      this.screen.feed(d);
    });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => {
      this.exitCode = code;
      resolve(code);
    }));
  }

  /** What the program wrote to its terminal, as text (escape sequences included). */
  output(): string {
    return Buffer.concat(this.raw).toString('utf8');
  }

  /** The pty host's own report (the exit line) and anything it failed with. */
  hostErrors(): string {
    return this.stderr;
  }

  write(keys: string): void {
    this.child.stdin?.write(keys);
  }

  /** Keys one at a time with a pause between, as a person types (Ink reads one key per chunk best). */
  async type(keys: string | string[], gapMs = 60): Promise<void> {
    for (const k of Array.isArray(keys) ? keys : [...keys]) {
      this.write(k);
      await sleep(gapMs);
    }
  }

  async waitFor<T>(what: string, probe: (screen: VirtualScreen) => T | undefined | false, timeoutMs = 20_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = probe(this.screen);
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- screen ---\n${this.screen.text()}\n--- host ---\n${this.stderr}`);
      if (this.exitCode !== undefined) throw new Error(`the program exited (${this.exitCode}) while waiting for ${what}\n--- screen ---\n${this.screen.text()}\n--- host ---\n${this.stderr}`);
      await sleep(25);
    }
  }

  /** Waits until `what` is on the screen; returns its row. */
  waitForText(what: string | RegExp, timeoutMs?: number): Promise<number> {
    return this.waitFor(`${String(what)} on the screen`, (s) => {
      const row = s.find(what);
      return row >= 0 ? row : undefined;
    }, timeoutMs);
  }

  async waitForExit(timeoutMs = 10_000): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.exitCode === undefined) this.child.kill('SIGKILL');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
