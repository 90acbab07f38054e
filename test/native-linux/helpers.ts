// Shared helpers for the Linux native tests: real processes, waited for by condition, never by sleep.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const isLinux = process.platform === 'linux';
export const inCI = process.env.CI === 'true';
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Polls cond until it is true, failing after timeoutMs. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Spawns path and waits until the child really runs it (past the fork, after the exec). */
export async function startProgram(path: string, args: string[] = ['300'], options: { stdin?: 'pipe' | 'ignore' } = {}): Promise<ChildProcess & { pid: number }> {
  const child = spawn(path, args, { stdio: [options.stdin ?? 'ignore', 'ignore', 'ignore'] });
  if (child.pid === undefined) throw new Error(`could not start ${path}`);
  const target = realpathSync(path);
  await waitFor(() => exeOf(child.pid!) === target, `${path} to start`);
  return child as ChildProcess & { pid: number };
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

let bundleDir: string | undefined;

/** Bundles a TypeScript entry into one ES module that child processes and workers can load (they
 *  cannot load .ts). It goes to a world-readable temporary folder with its own copy of koffi, so
 *  another user (nobody) can run it even when the checkout itself is private (e.g. under /root). */
export async function bundle(entry: string, name: string): Promise<string> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  if (!bundleDir) {
    bundleDir = mkdtempSync(join(tmpdir(), 'flowtop-test-bundles-'));
    for (const pkg of ['koffi', `@koromix/koffi-${process.platform}-${process.arch}`]) {
      const from = join(root, 'node_modules', pkg);
      if (existsSync(from)) cpSync(from, join(bundleDir, 'node_modules', pkg), { recursive: true });
    }
    chmodRecursive(bundleDir);
  }
  const file = join(bundleDir, `${name}.mjs`);
  const { build } = await import('rolldown');
  await build({
    input: join(root, entry),
    platform: 'node',
    external: ['koffi'],
    output: { file, format: 'esm' },
    logLevel: 'silent',
  });
  chmodSync(file, 0o644);
  return file;
}

/** Removes the bundles (call from afterAll). */
export function removeBundles(): void {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  bundleDir = undefined;
}

function chmodRecursive(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) chmodRecursive(path);
    else if (entry.isFile()) chmodSync(path, 0o644);
  }
}

/** Root-only tests: skip with a message outside CI, fail under CI=true. */
export function needRoot(): { skip: boolean; why: string } {
  if (isRoot) return { skip: false, why: '' };
  if (inCI) throw new Error('CI=true but the tests are not running as root: the native attribution tests need root');
  return { skip: true, why: 'needs root (runs under CI=true as root)' };
}
