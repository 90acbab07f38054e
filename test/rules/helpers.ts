// Test helpers for the rules area: bundle a TypeScript fixture into one .mjs a child process can run,
// temp folders, and waiting for a child's exit.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export async function bundleFixture(entry: string, name: string): Promise<string> {
  const outDir = join(root, 'node_modules/.cache/flowtop-test-rules');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${name}.mjs`);
  const { build } = await import('rolldown');
  // One file of the project's own code (dynamic imports of the command table inlined); packages stay
  // packages, resolved from node_modules as the installed CLI resolves them.
  await build({ input: join(root, entry), platform: 'node', external: [/^[^./]/], output: { file, format: 'esm', codeSplitting: false }, logLevel: 'silent' });
  return file;
}

export function tempDir(prefix = 'flowtop-rules-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function exited(child: ChildProcess, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve({ code: child.exitCode, signal: child.signalCode });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child ${child.pid} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}
