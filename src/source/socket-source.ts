// A FlowSource reading one extension socket: reconnects with capped exponential backoff, reports its
// connection status, and sends verdicts and rule changes back on the same connection. One socket is
// shared by every subscriber of events$ and status$; it opens with the first and closes with the last.
import { BehaviorSubject, Observable, Subject, defer, asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';
import type { Socket } from 'node:net';
import { MessageTooLongError } from '../protocol/codec.js';
import type { Capability, ClientMessage } from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { DEFAULT_BACKOFF, retryWithBackoff, type BackoffPolicy } from './backoff.js';
import { ConnectionLost, PermissionRefused, defaultConnect, openSession, type ReadStats, type SessionEvent } from './session.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from './types.js';

export interface SocketSourceOptions {
  /** Tag for this source's events; defaults to the socket path. */
  id?: string;
  /** Who we are, sent in `subscribe`. */
  client?: { name: string; version: string };
  backoff?: Partial<BackoffPolicy>;
  /** Scheduler for the backoff timers (tests pass a virtual one). */
  scheduler?: SchedulerLike;
  /** A connection without hello after this long is dropped and retried. */
  helloTimeoutMs?: number;
  /** Work per slice before yielding to the event loop. */
  sliceMs?: number;
  /** Decoded-but-unprocessed lines above which the socket is paused. */
  highWaterLines?: number;
  connect?: (path: string) => Socket;
}

const CAPABILITY_FOR: Partial<Record<ClientMessage['type'], Capability>> = {
  verdict: 'verdicts',
  'rule-add': 'rules',
  'rule-remove': 'rules',
  'rules-list': 'rules',
};

export interface SocketSource extends FlowSource {
  /** How far reading is behind: lines waiting, the peak, whether reading is paused. */
  readStats(): Readonly<ReadStats>;
}

export function createSocketSource(path: string, options: SocketSourceOptions = {}): SocketSource {
  const id = options.id ?? path;
  const policy: BackoffPolicy = { ...DEFAULT_BACKOFF, ...options.backoff };
  const scheduler = options.scheduler ?? asyncScheduler;
  const events = new Subject<SourceEvent>();
  const status = new BehaviorSubject<ConnectionStatus>({ state: 'connecting', attempt: 1 });
  const stats: ReadStats = { queuedLines: 0, peakQueuedLines: 0, paused: false, pauses: 0 };
  let writer: ((msg: ClientMessage) => void) | undefined;
  let capabilities: readonly Capability[] = [];
  let attempt = 0;
  let running: Subscription | undefined;
  let refs = 0;
  let closed = false;

  const session$ = defer(() => {
    attempt++;
    status.next({ state: 'connecting', attempt });
    return openSession(path, {
      client: options.client ?? { name: 'flowtop', version: 'unknown' },
      helloTimeoutMs: options.helloTimeoutMs ?? 5000,
      sliceMs: options.sliceMs ?? 5,
      highWaterLines: options.highWaterLines ?? 2_000,
      connect: options.connect ?? defaultConnect,
      stats,
      onWriter: (w) => {
        writer = w;
      },
    });
  }).pipe(
    retryWithBackoff<SessionEvent>(policy, scheduler, ({ error, retryAt }) => {
      const reason = error instanceof ConnectionLost ? error.message : `unexpected failure: ${String(error)}`;
      status.next({ state: 'reconnecting', reason, retryAt, attempt: attempt + 1 });
    }, (error) => !(error instanceof PermissionRefused)),
  );

  const onSessionEvent = (event: SessionEvent): void => {
    switch (event.kind) {
      case 'hello':
        attempt = 0;
        capabilities = event.hello.capabilities;
        status.next({ state: 'connected', hello: event.hello });
        events.next({ source: id, message: event.hello });
        return;
      case 'version-mismatch':
        status.next({ state: 'version-mismatch', theirs: event.hello.protocol, ours: PROTOCOL_VERSION });
        return;
      case 'message':
        events.next(event.local ? { source: id, message: event.message, local: true } : { source: id, message: event.message });
        return;
    }
  };

  const acquire = (): void => {
    if (refs++ > 0 || closed) return;
    running = session$.subscribe({
      next: onSessionEvent,
      // Only a refusal ends the retries (said once, with the fix); anything else here is a bug,
      // shown rather than thrown.
      error: (error: unknown) => status.next({ state: 'disconnected', reason: error instanceof PermissionRefused ? error.message : `stopped: ${String(error)}` }),
    });
  };
  const release = (): void => {
    if (--refs > 0) return;
    running?.unsubscribe();
    running = undefined;
    writer = undefined;
    attempt = 0;
    if (!closed) status.next({ state: 'disconnected', reason: 'no longer watched' });
  };

  const shared = <T>(subject: Subject<T>, acquireFirst: boolean): Observable<T> =>
    new Observable<T>((subscriber) => {
      // status$ acquires first so a new subscriber sees "connecting", not the previous state.
      if (acquireFirst) acquire();
      const inner = subject.subscribe(subscriber);
      if (!acquireFirst) acquire();
      return () => {
        inner.unsubscribe();
        release();
      };
    });

  return {
    id,
    readStats: () => ({ ...stats }),
    events$: shared(events, false),
    status$: shared(status, true),
    send(message: ClientMessage): SendResult {
      if (closed) return { ok: false, error: 'this source is closed' };
      if (!writer) return { ok: false, error: `not connected to ${path}` };
      const needed = CAPABILITY_FOR[message.type];
      if (needed && !capabilities.includes(needed)) return { ok: false, error: `the extension does not support "${message.type}" (no "${needed}" capability)` };
      try {
        writer(message);
        return { ok: true };
      } catch (error) {
        if (error instanceof MessageTooLongError) return { ok: false, error: error.message };
        return { ok: false, error: `send failed: ${error instanceof Error ? error.message : String(error)}` };
      }
    },
    close(): void {
      if (closed) return;
      closed = true;
      running?.unsubscribe();
      running = undefined;
      writer = undefined;
      status.next({ state: 'disconnected', reason: 'closed' });
      events.complete();
      status.complete();
    },
  };
}
