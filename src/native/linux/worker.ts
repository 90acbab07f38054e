// Worker-thread entry of the Linux backend: resolves batches synchronously here, off the main
// thread, so slow lookups (a cold hash of a large binary) never stall the UI's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { LinuxResolver, type ResolverOptions } from './process.js';
import { nameThisThread } from '../thread-name.js';
import { lowerThisThreadPriority } from '../thread-priority.js';

export interface WorkerRequest {
  id: number;
  tokens: Uint8Array[];
}

/** Answers come back in chunks so the main thread never has to take in one huge message at once. */
export interface WorkerReply {
  id: number;
  /** Index in the request of results[0]. */
  offset: number;
  results?: import('../../attribution/types.js').Attribution[];
  done: boolean;
  error?: string;
}

const CHUNK = 50;

if (parentPort) {
  const port = parentPort;
  nameThisThread('flowtop-lookup');
  // lookups give way to the thread that draws the screen
  lowerThisThreadPriority(10);
  const resolver = new LinuxResolver((workerData ?? {}) as ResolverOptions);
  port.on('message', (request: WorkerRequest) => {
    let offset = 0;
    try {
      do {
        const results = resolver.resolve(request.tokens.slice(offset, offset + CHUNK));
        const done = offset + results.length >= request.tokens.length;
        port.postMessage({ id: request.id, offset, results, done } satisfies WorkerReply);
        offset += results.length;
      } while (offset < request.tokens.length);
    } catch (error) {
      port.postMessage({ id: request.id, offset, done: true, error: error instanceof Error ? error.message : String(error) } satisfies WorkerReply);
    }
  });
}
