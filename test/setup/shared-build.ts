// The run's compiled project (test/setup/global-build.ts), for test files: read it, never write it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

/** The build the whole test run shares, or undefined when the run made none (then compile your own). */
export function sharedBuild(): string | undefined {
  const dir = inject('flowtopBuild');
  return dir && existsSync(join(dir, 'run-agent.mjs')) ? dir : undefined;
}
