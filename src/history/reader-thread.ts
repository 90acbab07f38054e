// The history reader's thread: the TUI's history view asks here, so a query over a large file never
// holds up drawing or key presses. One file, opened on the first request and kept open; a request
// that fails (no file yet, no permission, not a history) is answered with the reason and the next one
// tries to open it again.
import { parentPort, workerData } from 'node:worker_threads';
import { HistoryQueries, type QueryRequest } from './reader-core.js';
import { nameThisThread } from '../native/thread-name.js';

const port = parentPort;
if (port) {
  nameThisThread('flowtop-reader');
  const queries = new HistoryQueries(workerData as string);
  port.on('message', (m: QueryRequest | { type: 'close' }) => {
    if ('type' in m) {
      queries.close();
      port.close();
      return;
    }
    port.postMessage(queries.answer(m));
  });
}
