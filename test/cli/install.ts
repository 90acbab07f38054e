// A real installation of flowtop for tests that run the CLI as a child process: compiled with the
// project's tsc into a fresh temporary folder, with the bin launcher, the shipped scenarios and the
// production dependencies beside it. Every folder is 0755 so another user (nobody, through setpriv)
// can run it even when the checkout itself sits in a private directory.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sharedBuild } from '../setup/shared-build.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Installation {
  dir: string;
  /** argv that runs `flowtop`: [node, bin/flowtop.js]. */
  flowtop: string[];
  remove(): void;
}

/** Installs flowtop into a fresh 0755 temporary folder. `dist` reuses an existing build of
 *  tsconfig.build.json (by default the run's shared build) instead of compiling again. */
export function install(options: { dist?: string } = {}): Installation {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-install-'));
  chmodSync(dir, 0o755);
  const dist = options.dist ?? sharedBuild();
  if (dist) {
    cpSync(dist, join(dir, 'dist'), { recursive: true });
  } else {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const built = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { encoding: 'utf8' });
    if (!existsSync(join(dir, 'dist/cli.js'))) throw new Error(`compiling flowtop failed: ${built.stdout}${built.stderr}`);
  }
  if (!existsSync(join(dir, 'dist/cli.js'))) throw new Error(`no compiled CLI in ${dist ?? 'the build'}`);
  for (const part of ['bin', 'demo/scenarios', 'package.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  copyProductionDependencies(dir);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return {
    dir,
    flowtop: [process.execPath, join(dir, 'bin/flowtop.js')],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Copies the production dependencies, exactly as the lock file lists them, into `dir`/node_modules
 *  (copies, not a link to the checkout's: another user must be able to read them wherever the
 *  checkout lives). The caller makes them readable (chmod -R a+rX). */
export function copyProductionDependencies(dir: string): void {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (!path.startsWith('node_modules/') || meta.dev) continue;
    const from = join(ROOT, path);
    if (!existsSync(from)) continue; // an optional package for another platform
    mkdirSync(join(dir, path, '..'), { recursive: true });
    cpSync(from, join(dir, path), { recursive: true, dereference: true });
  }
}
