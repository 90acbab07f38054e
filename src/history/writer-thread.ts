// The history writer's thread: receives batches from the recorder, writes them (writer-core.ts), and
// posts back what happened. SQLite work never runs on the thread that judges flows or draws the TUI.
import { parentPort, workerData } from 'node:worker_threads';
import type { HistoryBatch } from './batch.js';
import { WriterCore, type WriterConfig } from './writer-core.js';
import { nameThisThread } from '../native/thread-name.js';
import { lowerThisThreadPriority } from '../native/thread-priority.js';

export type ToWriter = { type: 'batch'; batch: HistoryBatch } | { type: 'close' };

const port = parentPort;
if (port) {
  nameThisThread('flowtop-history');
  // history is never on the verdict path: its writes wait while the queue threads need the CPU
  // (batches queue up meanwhile, and are written once it is free)
  lowerThisThreadPriority(10);
  const core = new WriterCore(workerData as WriterConfig, (n) => port.postMessage(n));
  if (core.open()) {
    port.on('message', (m: ToWriter) => {
      if (m.type === 'batch') core.write(m.batch);
      else {
        core.close();
        port.postMessage({ type: 'closed' });
        port.close();
      }
    });
  } else {
    port.close();
  }
}
