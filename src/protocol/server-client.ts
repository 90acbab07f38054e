// One client of the extension server: its socket, framing state and output bounds (docs/protocol.md,
// "Limits"). The server owns the policy; a connection only reports to it.
import type { Socket } from 'node:net';
import { LineSplitter, type FrameEvent } from './framing.js';
import type { ClientMessage, ErrorCode, ExtensionMessage, SubscribeMessage } from './messages.js';

/** A client's requests are not read while this much output waits for it: one that sends requests
 *  without reading the answers stalls itself (its requests wait in the kernel), not the extension. */
export const READ_PAUSE_BYTES = 256 * 1024;
/** Heap a queued write holds besides its text (the string header, the stream's request entry). */
const WRITE_OVERHEAD_BYTES = 160;

/** Who is on the other end of the socket, as the kernel recorded it when the peer connected (on
 *  Linux: SO_PEERCRED and SO_PEERGROUPS, native/linux/peercred.ts). */
export interface PeerCredentials {
  /** A hint only: the PID may belong to another process by the time anyone reads it. */
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups the peer had when it connected; undefined where the kernel does not say. */
  groups?: number[];
}

export interface ServerClient {
  readonly id: string;
  /** Credentials of the connecting process (from `peerCredentials`); undefined where unavailable. */
  readonly peer?: PeerCredentials;
  /** The name and version the client gave in `subscribe`. */
  readonly info?: { name: string; version: string };
  readonly subscribed: boolean;
  /** Who this client decides as, when it is not a socket peer (a NATS request: `nats:<user>@<server>`). */
  readonly decider?: string;
  /** Queues one message; false when the client is gone (or was just dropped as too slow). */
  send(msg: ExtensionMessage): boolean;
  /** Sends an `error` reply (not counted against the client). */
  reply(code: ErrorCode, message: string, ref?: string): boolean;
  close(reason?: string): void;
}

/** Client messages after the handshake, handed to the extension. */
export type RequestMessage = Exclude<ClientMessage, SubscribeMessage>;

/** What a connection needs from its server. */
export interface ConnectionOwner {
  readonly maxWriteBuffer: number;
  readPeer(socket: Socket): PeerCredentials | undefined;
  encode(msg: ExtensionMessage): string | undefined;
  /** Whether the total of unsent output across clients still allows this one; false once dropped. */
  checkTotal(c: Connection): boolean;
  forget(c: Connection, reason: string): void;
}

export class Connection implements ServerClient {
  peer?: PeerCredentials;
  info?: { name: string; version: string };
  subscribed = false;
  /** The peer ended its side; closed once its input is handled. */
  ended = false;
  errors = 0;
  closed = false;
  readonly splitter = new LineSplitter();
  /** Framed input not handled yet: held while the client's output is backed up (READ_PAUSE_BYTES). */
  inbox: FrameEvent[] = [];
  readPaused = false;
  /** Writes handed to the socket and not yet flushed. */
  writesQueued = 0;
  private readonly written = (): void => {
    this.writesQueued--;
  };

  constructor(readonly id: string, readonly socket: Socket, private readonly owner: ConnectionOwner) {
    this.peer = owner.readPeer(socket);
  }

  send(msg: ExtensionMessage): boolean {
    const lines = this.owner.encode(msg);
    return lines === undefined ? !this.closed : this.write(lines);
  }

  /** Heap held by unsent output beyond the snapshot's slack, as the total bound counts it. */
  get queuedCost(): number {
    return Math.max(0, this.socket.writableLength - this.slack) + this.writesQueued * WRITE_OVERHEAD_BYTES;
  }

  /** Extra room while the subscribe snapshot drains: a large snapshot is not a slow client. */
  slack = 0;

  write(line: string, done?: () => void): boolean {
    if (this.closed) return false;
    this.writesQueued++;
    this.socket.write(line, done ? () => { this.written(); done(); } : this.written);
    const queued = this.socket.writableLength;
    if (queued > this.owner.maxWriteBuffer + this.slack) {
      this.drop(`too slow: ${queued} bytes waiting to be sent (limit ${this.owner.maxWriteBuffer})`);
      return false;
    }
    if (queued > READ_PAUSE_BYTES) return this.owner.checkTotal(this);
    return true;
  }

  reply(code: ErrorCode, message: string, ref?: string): boolean {
    return this.send(ref ? { type: 'error', code, message, ref } : { type: 'error', code, message });
  }

  /** Flushes what is queued, then closes. */
  close(reason = 'closed by the extension'): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    // A peer that never closes its half must not hold the descriptor forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.owner.forget(this, reason);
  }

  drop(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.owner.forget(this, reason);
  }
}
