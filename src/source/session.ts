// One connection to an extension, as a cold Observable: connect, read hello, subscribe, then stream
// messages. It errors (with the reason in words) when the connection is lost, so a retry operator can
// reconnect; it completes, without retrying, on a protocol version mismatch.
//
// Backpressure: lines are decoded in slices of at most `sliceMs` of work (decoding plus whatever the
// subscribers do synchronously), then the loop yields with setImmediate so timers, input and rendering
// get their turn. When decoded-but-unprocessed lines pile up past `highWaterLines` (the consumer lags),
// the socket is paused; the kernel buffer then fills and the extension sees a slow reader. Memory held
// here is bounded by highWaterLines plus one read chunk.
import { Observable } from 'rxjs';
import { createConnection, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { decodeExtensionMessage, encodeMessage, frameError } from '../protocol/codec.js';
import { LineSplitter, type FrameEvent } from '../protocol/framing.js';
import type { ClientMessage, ExtensionMessage, HelloMessage } from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { AGENT_GROUP } from '../agent/authorize.js';

export type SessionEvent =
  | { kind: 'hello'; hello: HelloMessage }
  | { kind: 'message'; message: ExtensionMessage; local?: true }
  | { kind: 'version-mismatch'; hello: HelloMessage };

export interface SessionOptions {
  client: { name: string; version: string };
  helloTimeoutMs: number;
  sliceMs: number;
  highWaterLines: number;
  connect: (path: string) => Socket;
  /** Updated by the session as it reads, for observability (and the backpressure test). */
  stats: ReadStats;
  /** Called with a writer once subscribed, and with undefined when the connection is gone. */
  onWriter: (write: ((msg: ClientMessage) => void) | undefined) => void;
}

export interface ReadStats {
  /** Framed lines waiting to be decoded and delivered. */
  queuedLines: number;
  /** The most that were ever waiting at once. */
  peakQueuedLines: number;
  /** Reading is paused because the consumer lags. */
  paused: boolean;
  /** Times reading was paused. */
  pauses: number;
}

export class ConnectionLost extends Error {}

/** This user may not use the socket: retrying cannot help until permissions change (a new login for
 *  a new group), so the source says so once and stops. */
export class PermissionRefused extends ConnectionLost {}

const JOIN_HINT = `sudo usermod -aG ${AGENT_GROUP} $USER, then log in again`;

export function describeSocketError(path: string, error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return `no extension socket at ${path}`;
    case 'ECONNREFUSED':
      return `nothing is listening on ${path}`;
    case 'EACCES':
      return `permission denied on ${path}`;
    case 'ECONNRESET':
    case 'EPIPE':
      return 'the extension reset the connection';
    default:
      return `${error.code ?? 'socket error'}: ${error.message}`;
  }
}

export function openSession(path: string, options: SessionOptions): Observable<SessionEvent> {
  return new Observable<SessionEvent>((subscriber) => {
    const socket = options.connect(path);
    const splitter = new LineSplitter();
    const stats = options.stats;
    stats.queuedLines = 0;
    stats.paused = false;
    const queue: FrameEvent[] = [];
    let head = 0; // queue is consumed from `head`; compacted when drained, to avoid O(n) shifts
    let hello: HelloMessage | undefined;
    let ended = false;
    let paused = false;
    let scheduled: NodeJS.Immediate | undefined;
    let finished = false;

    const finish = (reason: string | undefined, error?: ConnectionLost): void => {
      if (finished) return;
      finished = true;
      options.onWriter(undefined);
      if (error) subscriber.error(error);
      else if (reason === undefined) subscriber.complete();
      else subscriber.error(new ConnectionLost(reason));
    };
    const refused = (why: string): void => finish(undefined, new PermissionRefused(`${why} (${JOIN_HINT})`));
    let answered = false; // anything but an error since hello: the subscribe was accepted
    const helloTimer = setTimeout(() => finish(`no hello from the extension within ${options.helloTimeoutMs} ms`), options.helloTimeoutMs);

    const handleLine = (line: string): void => {
      const decoded = decodeExtensionMessage(line);
      if (!decoded.ok) {
        if (!hello) return finish(`the extension's first line is not a valid hello (${decoded.error.message})`);
        const { code, message } = decoded.error;
        subscriber.next({ kind: 'message', local: true, message: { type: 'error', code, message: `skipped a malformed line from the extension: ${message}` } });
        return;
      }
      const message = decoded.message;
      if (!hello) {
        if (message.type === 'error') {
          if (message.code === 'not-authorised') return refused('the agent refused this user');
          return finish(`the extension refused the connection: ${message.message}`);
        }
        if (message.type !== 'hello') return finish(`the extension began with "${message.type}" instead of hello`);
        clearTimeout(helloTimer);
        hello = message;
        if (message.protocol !== PROTOCOL_VERSION) {
          subscriber.next({ kind: 'version-mismatch', hello: message });
          return finish(undefined);
        }
        const write = (msg: ClientMessage): void => {
          socket.write(encodeMessage(msg));
        };
        write({ type: 'subscribe', protocol: PROTOCOL_VERSION, client: options.client });
        options.onWriter(write);
        subscriber.next({ kind: 'hello', hello: message });
        return;
      }
      if (message.type === 'error' && message.code === 'not-authorised' && !answered) return refused('the agent refused this user');
      if (message.type !== 'error') answered = true;
      if (message.type === 'hello') {
        subscriber.next({ kind: 'message', local: true, message: { type: 'error', code: 'out-of-order', message: 'the extension sent a second hello: ignored' } });
        return;
      }
      subscriber.next({ kind: 'message', message });
    };

    const drain = (): void => {
      scheduled = undefined;
      const start = performance.now();
      let n = 0;
      while (head < queue.length && !finished) {
        const event = queue[head]!;
        queue[head++] = undefined as unknown as FrameEvent;
        if (event.kind === 'line') handleLine(event.line);
        else {
          const error = frameError(event);
          if (error) subscriber.next({ kind: 'message', local: true, message: { type: 'error', code: error.code, message: `from the extension: ${error.message}` } });
        }
        // Checking the clock every 32 lines keeps its cost negligible and a slice within budget.
        if (++n % 32 === 0 && performance.now() - start >= options.sliceMs) break;
      }
      if (finished) return;
      if (head >= queue.length) {
        queue.length = 0;
        head = 0;
      }
      const backlog = queue.length - head;
      stats.queuedLines = backlog;
      if (paused && backlog <= options.highWaterLines / 2) {
        paused = false;
        stats.paused = false;
        socket.resume();
      }
      if (backlog > 0) scheduled = setImmediate(drain);
      else if (ended) finish('the extension closed the connection');
    };

    const enqueue = (events: FrameEvent[]): void => {
      for (const e of events) queue.push(e);
      const backlog = queue.length - head;
      stats.queuedLines = backlog;
      if (backlog > stats.peakQueuedLines) stats.peakQueuedLines = backlog;
      if (!paused && backlog > options.highWaterLines) {
        paused = true;
        stats.paused = true;
        stats.pauses++;
        socket.pause();
      }
      if (!scheduled && queue.length > head) scheduled = setImmediate(drain);
    };

    socket.on('data', (chunk: Buffer) => enqueue(splitter.push(chunk)));
    socket.on('end', () => {
      ended = true;
      enqueue(splitter.end());
      if (!scheduled) drain();
    });
    socket.on('close', () => {
      if (!ended) {
        ended = true;
        if (!scheduled) drain();
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if ((error.code === 'EACCES' || error.code === 'EPERM') && !hello) return refused('permission denied');
      finish(describeSocketError(path, error));
    });

    return () => {
      finished = true;
      clearTimeout(helloTimer);
      if (scheduled) clearImmediate(scheduled);
      options.onWriter(undefined);
      socket.destroy();
    };
  });
}

export const defaultConnect = (path: string): Socket => createConnection({ path });
