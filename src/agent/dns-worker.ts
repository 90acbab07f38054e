// The DNS-answer queue, on its own thread (a blocking netlink recv would freeze the main thread's
// event loop). Every packet is accepted at once — the answer is only read, never judged — and a copy
// of it goes to the main thread, which parses it into the host name map.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { NF_ACCEPT, NfQueue } from '../native/linux/nfqueue.js';
import { NetlinkError } from '../native/linux/netlink.js';
import { nameThisThread } from '../native/thread-name.js';

export interface DnsWorkerData {
  queueNum: number;
  control: MessagePort;
  /** Copies of the answer packets (Uint8Array[] per batch), on their own port so the main thread
   *  can read them synchronously (receiveMessageOnPort) before it names a flow. */
  answers: MessagePort;
}

export type DnsWorkerMessage =
  | { type: 'ready' }
  | { type: 'fatal'; message: string };

const data = workerData as DnsWorkerData;
const post = (m: DnsWorkerMessage): void => parentPort!.postMessage(m);
nameThisThread('flowtop-dns');

function main(): void {
  let queue: NfQueue;
  try {
    // Whole answers (EDNS answers are up to ~4 KiB); fail-open: an overflow is accepted unread.
    queue = new NfQueue({ queueNum: data.queueNum, failOpen: true, copyRange: 0xffff, receiveTimeoutMs: 100 });
  } catch (error) {
    post({ type: 'fatal', message: `cannot bind the DNS queue ${data.queueNum}: ${(error as Error).message}` });
    return;
  }
  post({ type: 'ready' });
  for (;;) {
    if (receiveMessageOnPort(data.control)) break; // any control message means stop
    let packets;
    try {
      packets = queue.receive(false);
    } catch (error) {
      post({ type: 'fatal', message: `DNS queue receive: ${(error as Error).message}` });
      break;
    }
    if (!packets || packets.length === 0) continue;
    const copies: Uint8Array[] = [];
    const verdicts = packets.map((p) => {
      copies.push(Uint8Array.prototype.slice.call(p.payload));
      return { id: p.id, verdict: NF_ACCEPT };
    });
    // Posted before the answer is released: the program cannot connect to the address before the
    // main thread has the name.
    data.answers.postMessage(copies);
    try {
      queue.sendVerdicts(verdicts);
    } catch (error) {
      // the kernel refused them (the queue is going away): with bypass it accepts them when we are gone
      if (!(error instanceof NetlinkError)) throw error;
    }
  }
  queue.close();
}

main();
