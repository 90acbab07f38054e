// Everything the agent reads from or does to the system, as one record handed to it (the way bandwhich
// passes its OsInputOutput to start()): the queue threads, the firewall, the BPF recorder, the DNS
// answer queue, sock_diag and conntrack, the socket server with its status file, the /proc checks
// and the clock. `linuxAgentIo` (linux-io.ts) builds the real one; tests build fakes, so the agent's
// policy (pending → verdict → broadcast, deadlines, remembered verdicts) runs without root.
import type { Endpoint, ExtensionMessage, FlowRecord, HelloMessage } from '../protocol/messages.js';
import type { RequestMessage, ServerClient } from '../protocol/server.js';
import type { SocketReader } from '../traffic/index.js';
import type { RecorderState } from './recorder-watch.js';
import type { DestroyOutcome } from './socket-destroy.js';
import type { AttributionMethod, MainToWorker, WorkerConfig } from './types.js';
import type { PoolHandlers } from './worker-pool.js';

export interface Clock {
  now(): number;
  /** Runs `fn` once after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** Runs `fn` every `ms` without keeping the process alive; the returned function stops it. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
  every: (ms, fn) => {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/** The queue threads, one NFQUEUE each (worker-pool.ts). */
export interface QueueWorkers {
  readonly count: number;
  /** Resolves once every queue is bound. */
  start(rules: MainToWorker): Promise<void>;
  post(m: MainToWorker): void;
  /** Answers held packets (pool ids); returns how many could not be sent. */
  sendVerdicts(verdicts: ReadonlyArray<{ id: number; verdict: number }>): number;
  stop(): Promise<void>;
}

/** TCP sockets' counters as they closed: the bytes of a flow that ended between two polls. */
export interface ClosedSockets {
  /** Reads what closed since the last call, all at once where the kernel can, and returns their
   *  port pairs (`portPairKey`; none when the kernel cannot: `counters` then asks for each socket).
   *  Called after the sockets were listed, every socket missing from that list has its counters
   *  here. `list` false: none are returned (the caller only wants them kept). */
  collect(list?: boolean): readonly number[];
  /** A closed socket's final counters (undefined when not seen). `look`: 'collected', only in what
   *  `collect` read (has it closed already?); 'after-collect', there, and elsewhere only when that
   *  read could not cover it (the caller collected after the socket was seen gone); 'anywhere'. */
  counters(local: Endpoint, remote: Endpoint, connected: boolean, look: 'collected' | 'after-collect' | 'anywhere'): ClosedSocket | undefined;
  /** The same as `counters(…, 'collected')`, by the ends' addresses as the map keys them (four
   *  network-order words each, IPv4 as ::ffff:a.b.c.d): no text to parse. */
  collectedCounters(local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number, connected: boolean): ClosedSocket | undefined;
}

/** A closed TCP socket's final data counters, and when it closed (ms since the epoch) where known. */
export interface ClosedSocket {
  rx: number;
  tx: number;
  closedAt?: number;
}

/** The cgroup BPF socket recorder, or what the agent does without it. */
export interface Recorder {
  readonly method: AttributionMethod;
  /** How owners are found, for the status and the start line. */
  readonly detail: string;
  /** Map fds for the queue threads; absent without BPF. */
  readonly maps?: { cookieMap: number; tupleMap: number };
  /** Whether its programs are still attached (attached again if not); undefined without BPF. */
  check(): RecorderState | undefined;
  /** TCP sockets' final counters, read as they closed; absent without BPF or on a kernel without
   *  sock_ops programs. */
  readonly closedSockets?: ClosedSockets;
  close(): void;
}

/** The DNS-answer queue's thread: copies of the answers it let through, handed to `learn`. */
export interface DnsAnswers {
  /** Hands the answers posted but not yet handled to `learn` now (before a flow is named). */
  drain(): void;
  /** Stops the thread (at once when `hurried` resolves first). */
  stop(hurried: Promise<void>): Promise<void>;
}

/** What the server asks of the agent. */
export interface ServerHandlers {
  hello(): HelloMessage;
  onSubscribe(client: ServerClient): Iterable<ExtensionMessage>;
  onClientClosed(): void;
  onMessage(client: ServerClient, msg: RequestMessage): void;
  log(line: string): void;
}

/** Protocol v1 on the agent's socket (only peers it authorises), and the status file beside it. */
export interface AgentServer {
  readonly clients: readonly ServerClient[];
  /** To every subscribed client now. */
  broadcast(msg: ExtensionMessage): void;
  /** To every subscribed client at the end of this event-loop turn, in one write each. */
  broadcastSoon(msg: ExtensionMessage): void;
  writeStatus(text: string): void;
  close(): Promise<void>;
  /** Removes the socket and the status file. */
  removeFiles(): void;
}

export interface FirewallRequest {
  queueNum: number;
  queueCount: number;
  failOpen: boolean;
  inbound: boolean;
  dnsQueueNum?: number;
}

export interface AgentIo {
  clock: Clock;
  attachRecorder(log: (line: string) => void): Recorder;
  queueWorkers(config: WorkerConfig, count: number, handlers: PoolHandlers): QueueWorkers;
  /** The DNS-answer queue's thread; undefined (said in the log) when it cannot run. */
  dnsAnswers(queueNum: number, learn: (packets: Uint8Array[]) => void, log: (line: string) => void): Promise<DnsAnswers | undefined>;
  /** Sends new flows to the queues; the queues are bound first, so fail-closed never blackholes a start. */
  installFirewall(request: FirewallRequest): { backend: string; replacedStale: boolean; remove(): void | Promise<void> };
  /** Reads sockets for the live flows' byte counters and ends. */
  socketReader(): SocketReader;
  serve(socketPath: string, handlers: ServerHandlers): Promise<AgentServer>;
  /** Destroys a flow's own socket (an exact lookup, never a listener on the same port): destroyed,
   *  gone already, or refused by the kernel (with its errno). */
  destroySocket(flow: { protocol: 'tcp' | 'udp'; local: Endpoint; remote: Endpoint }): DestroyOutcome;
  /** Deletes the connection-tracking entry of a UDP flow from `src` to `dst`: true when one was
   *  deleted, false when there was none; throws when it could not be deleted. */
  forgetUdpFlow(src: Endpoint, dst: Endpoint): boolean;
  /** Why a pending flow's process is gone (exited, or its PID names a newer one), if it is. */
  ownerGone(flow: FlowRecord): string | undefined;
  /** Whether the process instance a token names has ended. */
  tokenGone(token: string): boolean;
  /** Closes sock_diag and conntrack (and lets an unused firewall-cleanup helper go). */
  close(): void;
}
