// Vitest global setup: compiles the project once for the whole run, before any test file starts, and
// hands its path to every file (inject('flowtopBuild')). Each file used to compile its own copy: ~30
// compilations of the same sources per run, seconds each on a busy 2-core machine.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ROOT, compileProject } from './compile.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's compiled project (test/setup/compile.ts), read-only for the tests. */
    flowtopBuild: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = join(ROOT, 'node_modules/.cache', `flowtop-test-build-${process.pid}`);
  compileProject(dir);
  project.provide('flowtopBuild', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
