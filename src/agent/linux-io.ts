// The agent's I/O on Linux (see io.ts): NFQUEUE threads, iptables/nftables rules, the cgroup BPF
// socket recorder, the DNS-answer queue, sock_diag, conntrack, the socket server and its files, and
// /proc. Nothing here decides anything about a flow.
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { SocketRecorder } from '../native/linux/bpf.js';
import { closedKeyWords } from '../native/linux/closed-sockets.js';
import { cgroup2Root } from '../native/linux/cgroup2.js';
import { Conntrack } from '../native/linux/conntrack.js';
import { installFirewall } from '../native/linux/firewall.js';
import { FirewallCleanup } from '../native/linux/firewall-cleanup.js';
import { peerCredentials } from '../native/linux/peercred.js';
import { SockDiag, addressBytes } from '../native/linux/sock-diag.js';
import { ExtensionServer } from '../protocol/server.js';
import { openSocketReader } from '../traffic/index.js';
import { authorizeClient, ensureGroup } from './authorize.js';
import type { DnsWorkerMessage } from './dns-worker.js';
import { systemClock, type AgentIo, type AgentServer, type DnsAnswers, type Recorder, type ServerHandlers } from './io.js';
import { ownerGone, tokenGone } from './reaper.js';
import { RecorderWatch } from './recorder-watch.js';
import { destroyOutcome } from './socket-destroy.js';
import { SocketFiles } from './socket-files.js';
import { QueueWorkerPool } from './worker-pool.js';

export interface LinuxIoOptions {
  /** cgroup v2 directory to attach the recorder to (default: the cgroup2 root). */
  cgroup?: string;
  /** Skip BPF and use the inode scan (for tests and kernels where BPF misbehaves). */
  noBpf?: boolean;
}

export function linuxAgentIo(options: LinuxIoOptions): AgentIo {
  const diag = new SockDiag();
  let conntrack: Conntrack | undefined;
  // Started now, before the queues and the firewall, while no stop signal is likely: its session of
  // its own is what lets the rules be removed whatever signals the agent's group gets at stop.
  const cleanup = FirewallCleanup.start();
  return {
    clock: systemClock,
    attachRecorder: (log) => attachRecorder(options, log),
    queueWorkers: (config, count, handlers) => new QueueWorkerPool(config, count, handlers),
    dnsAnswers: (queueNum, learn, log) => startDnsThread(queueNum, learn, log),
    installFirewall: (r) => installFirewall({ queueNum: r.queueNum, queueCount: r.queueCount, bypass: r.failOpen, inbound: r.inbound, ...(r.dnsQueueNum !== undefined ? { dnsQueueNum: r.dnsQueueNum } : {}) }, cleanup),
    socketReader: () => openSocketReader(),
    serve,
    destroySocket: (flow) => destroyOutcome(() => diag.destroy({
      protocol: flow.protocol,
      local: { address: addressBytes(flow.local.address), port: flow.local.port },
      remote: { address: addressBytes(flow.remote.address), port: flow.remote.port },
    })),
    forgetUdpFlow: (src, dst) => {
      conntrack ??= new Conntrack();
      return conntrack.delete({
        protocol: 'udp',
        src: { address: addressBytes(src.address), port: src.port },
        dst: { address: addressBytes(dst.address), port: dst.port },
      });
    },
    ownerGone,
    tokenGone,
    close: () => {
      cleanup.dismiss(); // after the firewall's removal (which used it), or when there was none
      try {
        diag.close();
      } finally {
        conntrack?.close();
      }
    },
  };
}

function attachRecorder(options: LinuxIoOptions, log: (line: string) => void): Recorder {
  const without = (detail: string): Recorder => ({ method: 'inode-scan', detail, check: () => undefined, close: () => {} });
  if (options.noBpf) return without('BPF disabled by --no-bpf');
  const found = options.cgroup ? { path: options.cgroup, release: () => {}, private: false } : cgroup2Root();
  if (!found) return without('no cgroup v2 hierarchy: falling back to /proc scans');
  const root = found.path;
  let recorder: SocketRecorder;
  try {
    recorder = SocketRecorder.attach(root);
  } catch (error) {
    found.release();
    const detail = `BPF unavailable (${(error as Error).message.split('\n')[0]}): falling back to /proc scans`;
    log(detail);
    return without(detail);
  }
  // the attachment holds the cgroup: a private mount of it is no longer needed
  found.release();
  const watch = new RecorderWatch(recorder, log);
  const closed = recorder.closedSockets;
  const localWords = new Uint32Array(4);
  const remoteWords = new Uint32Array(4);
  if (recorder.staleRemoved) log(`removed ${recorder.staleRemoved} BPF programs left attached by an earlier agent`);
  return {
    method: 'bpf-cookie',
    detail: `cgroup ${found.private ? 'v2 root (private mount)' : root}; ${recorder.instanceNote}${recorder.staleRemoved ? `; removed ${recorder.staleRemoved} stale programs` : ''}`,
    maps: { cookieMap: recorder.cookieMap, tupleMap: recorder.tupleMap },
    check: () => watch.check(),
    ...(closed ? {
      closedSockets: {
        collect: (list) => closed.collect(list) ?? [],
        counters: (local, remote, connected, look) => {
          if (look === 'collected' && !closed.hasPorts(local.port, remote.port)) return undefined;
          // addresses parsed into these, not into a new buffer each: a flow's end is a hot path
          const l = closedKeyWords(local.address, localWords);
          const r = closedKeyWords(remote.address, remoteWords);
          return l && r ? closed.counters(l, local.port, r, remote.port, connected, look) : undefined;
        },
        collectedCounters: (local, localPort, remote, remotePort, connected) => closed.counters(local, localPort, remote, remotePort, connected, 'collected'),
      },
    } : {}),
    close: () => recorder.close(),
  };
}

/** The DNS-answer queue's thread; undefined (and no host names) when it cannot run. */
function startDnsThread(queueNum: number, learn: (packets: Uint8Array[]) => void, log: (line: string) => void): Promise<DnsAnswers | undefined> {
  const control = new MessageChannel();
  const answers = new MessageChannel();
  const worker = new Worker(new URL('./dns-worker.js', import.meta.url), {
    workerData: { queueNum, control: control.port2, answers: answers.port2 },
    transferList: [control.port2, answers.port2],
  });
  answers.port1.on('message', learn);
  const handle: DnsAnswers = {
    drain: () => {
      for (let m = receiveMessageOnPort(answers.port1); m; m = receiveMessageOnPort(answers.port1)) learn(m.message as Uint8Array[]);
    },
    stop: async (hurried) => {
      try {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        control.port1.postMessage('stop');
        await Promise.race([exited, hurried, new Promise((r) => setTimeout(r, 2000))]);
        await worker.terminate();
      } finally {
        answers.port1.close();
      }
    },
  };
  const off = (line: string): undefined => {
    log(line);
    answers.port1.close(); // a port with a listener would keep the process alive
    return undefined;
  };
  return new Promise((resolve) => {
    worker.on('message', (m: DnsWorkerMessage) => {
      if (m.type === 'ready') resolve(handle);
      else if (m.type === 'fatal') resolve(off(`host names from DNS answers are off: ${m.message}`));
    });
    worker.on('error', (error) => resolve(off(`DNS answer queue: ${error.message}`)));
  });
}

/** Bound and given its mode and group in a private directory, then renamed to its path: the socket's
 *  directory may be one others can write (see socket-files.ts). */
async function serve(socketPath: string, handlers: ServerHandlers): Promise<AgentServer> {
  const group = ensureGroup();
  const files = await SocketFiles.prepare(socketPath);
  const server = new ExtensionServer({
    path: files.bindPath,
    hello: () => handlers.hello(),
    onSubscribe: (client) => handlers.onSubscribe(client),
    onClientClosed: () => handlers.onClientClosed(),
    onMessage: (client, msg) => handlers.onMessage(client, msg),
    authorizePeer: (client) => authorizeClient(client, group.gid),
    peerCredentials,
    log: handlers.log,
  });
  try {
    await server.listen();
    files.publish(0o660, group.gid, handlers.log);
  } catch (error) {
    await server.close().catch(() => undefined);
    files.remove();
    throw error;
  }
  return {
    get clients() {
      return server.clients;
    },
    broadcast: (msg) => void server.broadcast(msg),
    broadcastSoon: (msg) => void server.broadcastSoon(msg),
    writeStatus: (text) => files.writeStatus(text),
    close: () => server.close(),
    removeFiles: () => files.remove(),
  };
}
