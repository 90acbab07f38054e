// The compiled project the tests run as child processes (the agent, the CLI, the TUI): tsconfig.build.json
// compiled with the project's own tsc, plus run-agent.mjs, a launcher for the CLI's main.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles src/ into `outDir`; throws with the compiler's output when no agent came out of it. */
export function compileProject(outDir: string): string {
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { encoding: 'utf8' });
  if (!existsSync(join(outDir, 'agent/queue-worker.js')) || !existsSync(join(outDir, 'cli.js'))) {
    throw new Error(`compiling flowtop failed:\n${tsc.stdout}${tsc.stderr}`);
  }
  writeFileSync(join(outDir, 'run-agent.mjs'), "import { main } from './cli.js';\nprocess.exitCode = await main(process.argv.slice(2));\n");
  return outDir;
}
