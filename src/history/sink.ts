// Where the recorder's batches go: the writer thread (writer-thread.ts) when its compiled file exists,
// else the same writer inline on timers (running from TypeScript sources, e.g. under the test runner).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { HistoryBatch } from './batch.js';
import { WriterCore, type WriterConfig, type WriterNotice } from './writer-core.js';
import type { ToWriter } from './writer-thread.js';

export interface HistorySink {
  readonly mode: 'thread' | 'inline';
  write(batch: HistoryBatch): void;
  /** Writes what was sent and closes the file. */
  close(): Promise<void>;
}

export interface SinkOptions {
  thread?: 'auto' | 'inline';
  onNotice: (notice: WriterNotice) => void;
}

export function openHistorySink(config: WriterConfig, options: SinkOptions): HistorySink {
  const url = new URL('./writer-thread.js', import.meta.url);
  const threaded = options.thread !== 'inline' && url.protocol === 'file:' && existsSync(fileURLToPath(url));
  return threaded ? threadSink(url, config, options) : inlineSink(config, options);
}

function inlineSink(config: WriterConfig, options: SinkOptions): HistorySink {
  const core = new WriterCore(config, options.onNotice);
  const open = core.open();
  return {
    mode: 'inline',
    write: (batch) => {
      if (open) core.write(batch);
    },
    close: async () => core.close(),
  };
}

function threadSink(url: URL, config: WriterConfig, options: SinkOptions): HistorySink {
  const worker = new Worker(url, { workerData: config });
  let alive = true;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => {
    alive = false;
    resolve();
  }));
  worker.on('message', (n: WriterNotice | { type: 'closed' }) => {
    if (n.type !== 'closed') options.onNotice(n);
  });
  // A thread that died writes nothing more: said as a stop, not as a passing problem.
  worker.on('error', (error) => options.onNotice({ type: 'refused', message: `the history thread failed: ${error.message}` }));
  // The agent's life is not tied to its history thread.
  worker.unref();
  const send = (m: ToWriter): void => {
    if (alive) worker.postMessage(m);
  };
  return {
    mode: 'thread',
    write: (batch) => send({ type: 'batch', batch }),
    close: async () => {
      if (!alive) return;
      worker.ref(); // the last batch is written even when nothing else keeps the process up
      send({ type: 'close' });
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      if (alive) await worker.terminate();
    },
  };
}
