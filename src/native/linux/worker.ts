// Worker-thread entry of the Linux backend: resolves batches synchronously here, off the main
// thread, so slow lookups (a cold hash of a large binary) never stall the UI's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { LinuxResolver, type ResolverOptions } from './process.js';

export interface WorkerRequest {
  id: number;
  tokens: Uint8Array[];
}

export interface WorkerReply {
  id: number;
  results?: import('../../attribution/types.js').Attribution[];
  error?: string;
}

if (parentPort) {
  const port = parentPort;
  const resolver = new LinuxResolver((workerData ?? {}) as ResolverOptions);
  port.on('message', (request: WorkerRequest) => {
    let reply: WorkerReply;
    try {
      reply = { id: request.id, results: resolver.resolve(request.tokens) };
    } catch (error) {
      reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
    }
    port.postMessage(reply);
  });
}
