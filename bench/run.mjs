#!/usr/bin/env node
// Runs one benchmark area: compiles src/ + bench/ with the project's TypeScript into dist-bench/,
// then runs bench/<area>/index.ts from there. Usage: npm run bench -- <area> [args...]
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const areas = readdirSync(join(root, 'bench'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(root, 'bench', d.name, 'index.ts')))
  .map((d) => d.name);
const [area, ...args] = process.argv.slice(2);
if (!area || !areas.includes(area)) {
  process.stderr.write(`usage: npm run bench -- <area> [args]\nareas: ${areas.join(', ')}\n`);
  process.exit(2);
}
process.stderr.write('compiling benchmarks…\n');
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.bench.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const run = spawnSync(process.execPath, ['--expose-gc', join(root, 'dist-bench/bench', area, 'index.js'), ...args], { stdio: 'inherit' });
process.exit(run.status ?? 1);
