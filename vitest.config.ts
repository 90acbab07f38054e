import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Native (koffi) calls, namespaces and real processes: separate processes, not worker threads.
    pool: 'forks',
    // Two test files at a time even on 2 cores (vitest's default there is one): most files wait on
    // agents, deadlines and child processes rather than compute, and two at a time halved the agent
    // files' wall time on a 2-core machine.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // The project is compiled once per run for every test that runs it as a child process.
    globalSetup: ['test/setup/global-build.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
