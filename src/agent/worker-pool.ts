// Several queue workers, one NFQUEUE each (queues first … first + count - 1): the firewall spreads new
// flows over them by CPU (--queue-balance with --queue-cpu-fanout), so every core judges packets and
// runs the handshake a verdict releases. Packets a worker hands to the main thread carry their queue
// in the id (index × 2^32 + packet id, exact in a double) so the main thread answers on the right queue.
import { MessageChannel, Worker } from 'node:worker_threads';
import { libc } from '../native/linux/libc.js';
import { encodeVerdicts } from '../native/linux/nfqueue.js';
import type { MainToWorker, WorkerConfig, WorkerToMain } from './types.js';

const QUEUE_SPAN = 2 ** 32;

/** The held packet id a worker of queue index `index` reports for kernel packet id `id`. */
export function poolPacketId(index: number, id: number): number {
  return index * QUEUE_SPAN + (id >>> 0);
}

export interface PoolHandlers {
  onMessage(m: Exclude<WorkerToMain, { type: 'ready' } | { type: 'fatal' } | { type: 'log' }>): void;
  /** A worker stopped on its own (after start): the agent judges nothing on that queue any more. */
  onExit(message: string): void;
  log(line: string): void;
}

interface Member {
  worker: Worker;
  control: MessageChannel;
  queueNum: number;
  fd: number;
}

export class QueueWorkerPool {
  private readonly members: Member[] = [];
  private stopping = false;

  constructor(private readonly config: WorkerConfig, readonly count: number, private readonly handlers: PoolHandlers) {}

  get firstQueue(): number {
    return this.config.queueNum;
  }

  /** Starts every worker; resolves once all queues are bound, rejects (after stopping the others) if one cannot bind. */
  async start(rules: MainToWorker): Promise<void> {
    const ready: Array<Promise<void>> = [];
    for (let index = 0; index < this.count; index++) {
      const queueNum = this.config.queueNum + index;
      const control = new MessageChannel();
      const worker = new Worker(new URL('./queue-worker.js', import.meta.url), {
        workerData: { config: { ...this.config, queueNum, queueIndex: index, queueCount: this.count }, control: control.port2 },
        transferList: [control.port2],
      });
      const member: Member = { worker, control, queueNum, fd: -1 };
      this.members.push(member);
      control.port1.postMessage(rules);
      ready.push(new Promise((resolve, reject) => {
        worker.on('message', (m: WorkerToMain) => {
          if (m.type === 'ready') {
            member.fd = m.fd;
            resolve();
          } else if (m.type === 'fatal') {
            reject(new Error(m.message));
            if (!this.stopping) this.handlers.log(m.message);
          } else if (m.type === 'log') {
            if (!this.stopping) this.handlers.log(m.message);
          } else this.handlers.onMessage(m);
        });
        worker.on('error', (error) => reject(error));
        worker.on('exit', (code) => {
          if (this.stopping) return;
          const message = `queue worker ${queueNum} exited (${code})`;
          reject(new Error(message));
          this.handlers.onExit(message);
        });
      }));
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  post(m: MainToWorker): void {
    for (const member of this.members) member.control.port1.postMessage(m);
  }

  /** Answers held packets (pool ids) on their own queues; returns how many could not be sent. */
  sendVerdicts(verdicts: ReadonlyArray<{ id: number; verdict: number }>): number {
    let failed = 0;
    if (this.members.length === 1) return this.sendOn(this.members[0]!, verdicts);
    const byQueue = new Map<number, Array<{ id: number; verdict: number }>>();
    for (const v of verdicts) {
      const index = Math.floor(v.id / QUEUE_SPAN);
      let list = byQueue.get(index);
      if (!list) byQueue.set(index, (list = []));
      list.push(v);
    }
    for (const [index, list] of byQueue) {
      const member = this.members[index];
      failed += member ? this.sendOn(member, list) : list.length;
    }
    return failed;
  }

  private sendOn(member: Member, verdicts: ReadonlyArray<{ id: number; verdict: number }>): number {
    if (verdicts.length === 0) return 0;
    if (member.fd < 0) return verdicts.length;
    // encodeVerdicts keeps the low 32 bits of each id: the kernel's packet id
    const buf = encodeVerdicts(member.queueNum, verdicts);
    return libc().send(member.fd, buf, buf.length, 0) < 0 ? verdicts.length : 0;
  }

  /** Asks each worker to stop (it unbinds its queue), then ends the ones that do not within 2 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.members.map(async (member) => {
      const exited = new Promise((resolve) => member.worker.once('exit', resolve));
      member.control.port1.postMessage({ type: 'stop' } satisfies MainToWorker);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      await member.worker.terminate();
    }));
  }
}
