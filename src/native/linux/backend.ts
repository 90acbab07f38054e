// The Linux attribution backend: resolves token batches on a worker thread (src/native/linux/worker.ts)
// when the compiled worker is available, else in this thread in short slices that yield to the event
// loop between them (running from TypeScript sources, e.g. under the test runner).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Attribution, AttributionBackend } from '../../attribution/types.js';
import { LinuxResolver, type ResolverOptions } from './process.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

export interface LinuxBackendOptions extends ResolverOptions {
  /** 'auto' (default): the worker if its compiled file exists; 'inline': this thread; or a worker file URL. */
  thread?: 'auto' | 'inline' | URL;
  /** In-thread mode: longest slice of work between yields to the event loop, in ms (default 4). */
  sliceMs?: number;
  /** Worker mode: a worker that makes no progress for this long (e.g. reading an executable on a hung
   *  network file system) is replaced, and the lookups it owed fail with that reason (default 15,000). */
  stallMs?: number;
}

export interface LinuxBackend extends AttributionBackend {
  readonly kind: 'linux';
  /** 'worker' or 'inline': where lookups run. */
  readonly mode: 'worker' | 'inline';
}

export function createLinuxBackend(options: LinuxBackendOptions = {}): LinuxBackend {
  const url = workerUrl(options.thread ?? 'auto');
  return url ? workerBackend(url, options) : inlineBackend(options);
}

function workerUrl(thread: 'auto' | 'inline' | URL): URL | undefined {
  if (thread === 'inline') return undefined;
  if (thread instanceof URL) return thread;
  const compiled = new URL('./worker.js', import.meta.url);
  return compiled.protocol === 'file:' && existsSync(fileURLToPath(compiled)) ? compiled : undefined;
}

function resolverOptions(options: LinuxBackendOptions): ResolverOptions {
  const { dpkgRoot, passwdPath, hashCacheSize, maxParents } = options;
  return { dpkgRoot, passwdPath, hashCacheSize, maxParents };
}

function inlineBackend(options: LinuxBackendOptions): LinuxBackend {
  const resolver = new LinuxResolver(resolverOptions(options));
  const sliceMs = options.sliceMs ?? 4;
  return {
    kind: 'linux',
    mode: 'inline',
    async resolve(tokens) {
      const results: Attribution[] = [];
      let sliceStart = performance.now();
      for (const token of tokens) {
        results.push(resolver.resolveOne(token));
        if (performance.now() - sliceStart > sliceMs) {
          await new Promise((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
        }
      }
      return results;
    },
  };
}

function workerBackend(url: URL, options: LinuxBackendOptions): LinuxBackend {
  let worker: Worker | undefined;
  let nextId = 1;
  const waiting = new Map<number, { results: Attribution[]; resolve: (r: Attribution[]) => void; reject: (e: Error) => void }>();

  const stallMs = options.stallMs ?? 15_000;
  let lastProgress = 0;
  let watchdog: NodeJS.Timeout | undefined;

  const failAll = (error: Error): void => {
    for (const { reject } of waiting.values()) reject(error);
    waiting.clear();
    worker = undefined;
    if (watchdog) clearTimeout(watchdog);
    watchdog = undefined;
  };

  /** Checks, while answers are owed, that the worker keeps answering. */
  const watch = (): void => {
    if (watchdog || waiting.size === 0) return;
    watchdog = setTimeout(() => {
      watchdog = undefined;
      if (waiting.size === 0) return;
      if (performance.now() - lastProgress >= stallMs) {
        const stuck = worker;
        failAll(new Error(`the lookup worker made no progress for ${Math.round(stallMs / 1000)} s and was restarted`));
        void stuck?.terminate();
        return;
      }
      watch();
    }, stallMs / 4);
  };

  const start = (): Worker => {
    const w = new Worker(url, { workerData: resolverOptions(options) });
    w.on('message', (reply: WorkerReply) => {
      lastProgress = performance.now();
      const entry = waiting.get(reply.id);
      if (!entry) return;
      if (reply.results) entry.results.push(...reply.results);
      if (!reply.done && !reply.error) return;
      waiting.delete(reply.id);
      if (waiting.size === 0) {
        w.unref();
        if (watchdog) clearTimeout(watchdog);
        watchdog = undefined;
      }
      if (reply.error) entry.reject(new Error(`the lookup worker failed: ${reply.error}`));
      else entry.resolve(entry.results);
    });
    w.on('error', (error) => failAll(new Error(`the lookup worker failed: ${error.message}`)));
    w.on('exit', (code) => {
      if (worker === w) failAll(new Error(`the lookup worker exited (code ${code})`));
    });
    w.unref();
    return w;
  };

  return {
    kind: 'linux',
    mode: 'worker',
    resolve(tokens) {
      if (tokens.length === 0) return Promise.resolve([]);
      worker ??= start();
      const w = worker;
      const id = nextId++;
      return new Promise<Attribution[]>((resolve, reject) => {
        if (waiting.size === 0) lastProgress = performance.now();
        waiting.set(id, { results: [], resolve, reject });
        w.ref(); // keep the process alive while an answer is owed
        watch();
        const request: WorkerRequest = { id, tokens: tokens.map((t) => Uint8Array.from(t)) };
        w.postMessage(request);
      });
    },
    close() {
      const w = worker;
      worker = undefined;
      failAll(new Error('the Linux attribution backend was closed'));
      void w?.terminate();
    },
  };
}
