// The extension side of protocol v1: a Unix socket server for many clients (docs/protocol.md,
// "Session"). It frames, validates and answers protocol errors itself; the extension sees only
// well-formed, in-order, authorised client messages through onMessage.
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { decodeClientMessage, encodeLines, frameError, type ProtocolError } from './codec.js';
import type { FrameEvent } from './framing.js';
import type { ClientMessage, ExtensionMessage, HelloMessage } from './messages.js';
import { PROTOCOL_VERSION } from './messages.js';
import { Connection, READ_PAUSE_BYTES, type PeerCredentials, type RequestMessage, type ServerClient } from './server-client.js';
export type { PeerCredentials, RequestMessage, ServerClient } from './server-client.js';

/** Protocol errors a client may make before it is disconnected (docs/protocol.md, "Limits"). */
export const DEFAULT_MAX_ERRORS = 50;
/** Unsent bytes queued for one client before it is dropped as too slow. */
export const DEFAULT_MAX_WRITE_BUFFER = 8 * 1024 * 1024;
export const DEFAULT_MAX_CLIENTS = 64;
export const DEFAULT_SUBSCRIBE_TIMEOUT_MS = 10_000;
/** What all clients' unsent output may cost together (see queuedCost): 64 clients at 8 MiB each would
 *  be half a gigabyte of nominal queue, and several times that in heap (a flood of short replies held
 *  1.1 GB for 60 clients). Past it the client with the most waiting is dropped. */
export const DEFAULT_MAX_TOTAL_WRITE_BUFFER = 64 * 1024 * 1024;

export interface ExtensionServerOptions {
  path: string;
  hello: HelloMessage | ((client: ServerClient) => HelloMessage);
  /** Messages sent right after a valid subscribe, before any broadcast: the current flows, the rules.
   *  Synchronous on purpose, so no broadcast can fall between the snapshot and the live stream. */
  onSubscribe?: (client: ServerClient) => Iterable<ExtensionMessage>;
  onMessage?: (client: ServerClient, msg: RequestMessage) => void;
  /** Decides whether the peer may talk to this extension at all, when it connects (from its
   *  credentials): true, or the reason it may not. A refused peer is sent nothing but one
   *  `not-authorised` error (no hello: the host name and mode are not for it), then closed. */
  authorizePeer?: (client: ServerClient) => true | string;
  /** Reads a connecting peer's credentials from its socket (the platform's: Linux SO_PEERCRED).
   *  Without it no client has `peer`, so an authorizePeer that needs one refuses everyone. */
  peerCredentials?: (socket: Socket) => PeerCredentials | undefined;
  /** Every client message, subscribe included, passes here first. true: allowed; false or a reason:
   *  refused with `not-authorised` (a refused subscribe also closes the connection). */
  authorize?: (client: ServerClient, msg: ClientMessage) => boolean | string;
  /** Told about failures the server survived (an extension callback that threw, a message it could
   *  not encode): nothing a client does may stop the server. */
  log?: (line: string) => void;
  onClientClosed?: (client: ServerClient, reason: string) => void;
  maxErrors?: number;
  maxWriteBufferBytes?: number;
  /** Bound on all clients' queued output together (DEFAULT_MAX_TOTAL_WRITE_BUFFER). */
  maxTotalWriteBufferBytes?: number;
  maxClients?: number;
  subscribeTimeoutMs?: number;
  /** chmod of the socket file after listen (e.g. 0o666 when authorize checks peers itself). */
  socketMode?: number;
}

export class ExtensionServer {
  readonly maxWriteBuffer: number;
  readonly readPeer: (socket: Socket) => PeerCredentials | undefined;
  private readonly maxTotalWriteBuffer: number;
  private readonly maxErrors: number;
  private readonly maxClients: number;
  private readonly subscribeTimeoutMs: number;
  private readonly connections = new Map<string, Connection>();
  /** Every open socket, including those closing (ended, flushing) that left `connections`. */
  private readonly sockets = new Set<Socket>();
  /** Subscribers' sockets corked by broadcastSoon until the end of this event-loop turn. */
  private corked: Socket[] = [];
  private server?: Server;
  private nextId = 1;

  constructor(private readonly options: ExtensionServerOptions) {
    this.maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
    this.maxWriteBuffer = options.maxWriteBufferBytes ?? DEFAULT_MAX_WRITE_BUFFER;
    this.readPeer = options.peerCredentials ?? (() => undefined);
    this.maxTotalWriteBuffer = options.maxTotalWriteBufferBytes ?? DEFAULT_MAX_TOTAL_WRITE_BUFFER;
    this.maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.subscribeTimeoutMs = options.subscribeTimeoutMs ?? DEFAULT_SUBSCRIBE_TIMEOUT_MS;
  }

  get path(): string {
    return this.options.path;
  }

  get clients(): ServerClient[] {
    return [...this.connections.values()];
  }

  /** Starts listening. A stale socket file left by a dead process is replaced; a live one is not. */
  async listen(): Promise<void> {
    await mkdir(dirname(this.options.path), { recursive: true });
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    try {
      await listenOn(server, this.options.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await isLive(this.options.path))) throw error;
      const stat = await lstat(this.options.path);
      if (!stat.isSocket()) throw new Error(`${this.options.path} exists and is not a socket: refusing to replace it`);
      await unlink(this.options.path);
      await listenOn(server, this.options.path);
    }
    if (this.options.socketMode !== undefined) await chmod(this.options.path, this.options.socketMode);
    this.server = server;
  }

  /** Sends one message to every subscribed client now (with anything broadcastSoon held back before
   *  it, in the same write); returns how many were sent it. */
  broadcast(msg: ExtensionMessage): number {
    // Nothing is encoded for nobody: an agent with observers (its history) and no client publishes
    // every flow to them, not to this socket.
    if (!this.anySubscriber()) {
      this.flushSoon();
      return 0;
    }
    const lines = this.encode(msg);
    const sent = lines === undefined ? 0 : this.toSubscribers(lines);
    this.flushSoon();
    return sent;
  }

  /** The message's lines (split when it is a long list); undefined, and logged, when it cannot be
   *  sent at all: a message the extension built wrong is skipped, it never stops the server. */
  encode(msg: ExtensionMessage): string | undefined {
    try {
      return encodeLines(msg);
    } catch (error) {
      this.log(`not sent: a "${msg.type}" message: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }

  private log(line: string): void {
    try {
      this.options.log?.(line);
    } catch { /* a failing logger must not stop the server either */ }
  }

  /** Called when `c` has much output waiting: past the bound on all clients together, the client
   *  with the most waiting is dropped (usually `c`). Returns whether `c` is still connected. */
  checkTotal(c: Connection): boolean {
    let total = 0;
    let worst: Connection | undefined;
    for (const other of this.connections.values()) {
      const cost = other.queuedCost;
      total += cost;
      if (!worst || cost > worst.queuedCost) worst = other;
    }
    if (total > this.maxTotalWriteBuffer && worst) {
      worst.drop(`too slow: ${worst.socket.writableLength} bytes waiting to be sent while all clients together had ${total} (limit ${this.maxTotalWriteBuffer})`);
    }
    return !c.closed;
  }

  /** Sends a message that may wait for the end of this turn of the event loop: what is broadcast in
   *  one turn (decisions, a poll's counters and ends) leaves in one write per client, not one system
   *  call — and one wake-up of each client — per line. Order with broadcast() is kept. */
  broadcastSoon(msg: ExtensionMessage): number {
    if (this.corked.length === 0 && !this.anySubscriber()) return 0;
    const line = this.encode(msg);
    if (line === undefined) return 0;
    if (this.corked.length === 0) {
      for (const c of this.connections.values()) {
        if (!c.subscribed || c.closed) continue;
        c.socket.cork();
        this.corked.push(c.socket);
      }
      if (this.corked.length === 0) return 0;
      setImmediate(() => this.flushSoon());
    }
    return this.toSubscribers(line);
  }

  private anySubscriber(): boolean {
    for (const c of this.connections.values()) if (c.subscribed && !c.closed) return true;
    return false;
  }

  private toSubscribers(line: string): number {
    let sent = 0;
    for (const c of this.connections.values()) if (c.subscribed && c.write(line)) sent++;
    return sent;
  }

  private flushSoon(): void {
    if (this.corked.length === 0) return;
    const corked = this.corked;
    this.corked = [];
    for (const socket of corked) socket.uncork();
  }

  /** Stops accepting, closes every client and removes the socket file. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of [...this.connections.values()]) c.drop('server closing');
    for (const socket of this.sockets) socket.destroy();
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.options.path).catch(() => undefined);
  }

  forget(c: Connection, reason: string): void {
    if (!this.connections.delete(c.id)) return;
    this.options.onClientClosed?.(c, reason);
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const c = new Connection(`c${this.nextId++}`, socket, this);
    socket.on('error', (error) => c.drop(`socket error: ${error.message}`));
    socket.on('close', () => c.drop('peer closed the connection'));
    if (this.connections.size >= this.maxClients) {
      c.reply('internal', `too many clients (limit ${this.maxClients}); try again later`);
      c.close('too many clients');
      return;
    }
    const allowed = this.peerAllowed(c);
    if (allowed !== true) {
      c.reply('not-authorised', allowed);
      c.close('not authorised');
      return;
    }
    this.connections.set(c.id, c);
    let hello: HelloMessage;
    try {
      hello = typeof this.options.hello === 'function' ? this.options.hello(c) : this.options.hello;
    } catch (error) {
      this.log(`hello failed: ${error instanceof Error ? error.message : String(error)}`);
      c.reply('internal', 'the extension could not say hello');
      c.close('hello failed');
      return;
    }
    c.send(hello);
    const timer = setTimeout(() => {
      if (c.subscribed || c.closed) return;
      c.reply('out-of-order', `no subscribe within ${this.subscribeTimeoutMs} ms of hello`);
      c.close('no subscribe');
    }, this.subscribeTimeoutMs);
    timer.unref();
    socket.on('data', (chunk: Buffer) => this.receive(c, c.splitter.push(chunk)));
    socket.on('drain', () => this.receive(c, []));
    socket.on('end', () => {
      c.ended = true;
      this.receive(c, c.splitter.end());
    });
  }

  /** The peer's credentials against authorizePeer; a check that throws refuses. */
  private peerAllowed(c: Connection): true | string {
    if (!this.options.authorizePeer) return true;
    try {
      return this.options.authorizePeer(c);
    } catch (error) {
      this.log(`authorising a peer failed: ${error instanceof Error ? error.message : String(error)}`);
      return 'the extension could not check who you are: refused';
    }
  }

  /** Handles framed input in order. While much output waits for the client, the rest is held and
   *  the socket paused: a client that floods requests without reading the answers gets no more
   *  answers queued until it reads (the 'drain' handler resumes). */
  private receive(c: Connection, events: FrameEvent[]): void {
    if (c.inbox.length === 0) c.inbox = events;
    else for (const e of events) c.inbox.push(e);
    let i = 0;
    while (i < c.inbox.length && !c.closed) {
      if (c.socket.writableLength > READ_PAUSE_BYTES) {
        c.inbox = c.inbox.slice(i);
        if (!c.readPaused) {
          c.readPaused = true;
          c.socket.pause();
        }
        return;
      }
      const event = c.inbox[i++]!;
      try {
        this.event(c, event);
      } catch (error) {
        // Not reachable by design (decoding never throws, extension callbacks are guarded): kept
        // so that no input can ever throw out of a socket handler and end the process.
        this.log(`handling client ${c.id}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
        c.reply('internal', 'the extension failed to handle a message');
      }
    }
    c.inbox = [];
    if (c.readPaused && !c.closed) {
      c.readPaused = false;
      c.socket.resume();
    }
    if (c.ended) c.close('peer ended the connection');
  }

  private event(c: Connection, event: FrameEvent): void {
    if (event.kind !== 'line') {
      const error = frameError(event);
      if (error) this.misbehaved(c, error);
      return;
    }
    const decoded = decodeClientMessage(event.line);
    if (!decoded.ok) this.misbehaved(c, decoded.error);
    else this.handle(c, decoded.message);
  }

  /** A protocol error by the client: answered, skipped, and counted against the limit. */
  private misbehaved(c: Connection, error: ProtocolError): void {
    c.errors++;
    c.reply(error.code, error.message, error.ref);
    if (c.errors >= this.maxErrors) {
      c.reply('too-many-errors', `${c.errors} protocol errors: closing the connection`);
      c.close(`too many protocol errors (${c.errors})`);
    }
  }

  private handle(c: Connection, msg: ClientMessage): void {
    if (msg.type === 'subscribe') {
      if (c.subscribed) return this.misbehaved(c, { code: 'out-of-order', message: 'already subscribed', ...ref(msg) });
      if (msg.protocol !== PROTOCOL_VERSION) {
        c.reply('version-mismatch', `this extension speaks protocol ${PROTOCOL_VERSION}; the client asked for ${msg.protocol}`, msg.ref);
        return c.close('version mismatch');
      }
      if (!this.authorized(c, msg)) return c.close('not authorised');
      c.info = msg.client;
      // Snapshot then live, with nothing in between: onSubscribe is synchronous.
      let snapshot = 0;
      let last = '';
      try {
        for (const m of this.options.onSubscribe?.(c) ?? []) {
          const lines = this.encode(m);
          if (lines === undefined) continue;
          if (last && !c.write(last)) return;
          last = lines;
          snapshot += last.length;
          c.slack = snapshot;
        }
      } catch (error) {
        this.log(`snapshot for client ${c.id} failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
        c.reply('internal', `the extension could not send its snapshot: ${error instanceof Error ? error.message : String(error)}`, msg.ref);
        return c.close('snapshot failed');
      }
      if (last && !c.write(last, () => (c.slack = 0))) return;
      c.subscribed = true;
      return;
    }
    if (!c.subscribed) return this.misbehaved(c, { code: 'out-of-order', message: `"${msg.type}" before subscribe`, ...ref(msg) });
    if (!this.authorized(c, msg)) return;
    try {
      this.options.onMessage?.(c, msg);
    } catch (error) {
      this.log(`handling "${msg.type}" from client ${c.id}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
      c.reply('internal', `the extension failed to handle "${msg.type}": ${error instanceof Error ? error.message : String(error)}`, msg.ref);
    }
  }

  private authorized(c: Connection, msg: ClientMessage): boolean {
    let verdict: boolean | string;
    try {
      verdict = this.options.authorize ? this.options.authorize(c, msg) : true;
    } catch (error) {
      this.log(`authorising "${msg.type}" failed: ${error instanceof Error ? error.message : String(error)}`);
      verdict = false;
    }
    if (verdict === true) return true;
    const who = c.peer ? `uid ${c.peer.uid} (pid ${c.peer.pid})` : 'this client';
    c.reply('not-authorised', typeof verdict === 'string' ? verdict : `${who} may not send "${msg.type}"`, msg.ref);
    return false;
  }
}

const ref = (msg: ClientMessage): { ref?: string } => (msg.ref ? { ref: msg.ref } : {});

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Whether something accepts connections on the path (a live server) rather than a stale file. */
export function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
