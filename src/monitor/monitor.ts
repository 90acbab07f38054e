// The passive monitor: what `flowtop` shows when no extension socket is running. No privileges
// needed: one sock_diag dump per interval lists every TCP/UDP socket (with uid, inode and tcp_info
// counters), owners are found among the processes this user may read, and each flow carries the
// owner's Linux token so the attribution layer can verify it. It cannot block anything.
import { hostname } from 'node:os';
import { BehaviorSubject, EMPTY, Observable, Subject } from 'rxjs';
import type { Capability, ClientMessage, ExtensionMessage, HelloMessage } from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from '../source/types.js';
import { openSocketReader, type SocketReader } from '../traffic/reader.js';
import { HostNameMap } from '../hostnames/map.js';
import { ReverseLookup, type ReverseResolver } from '../hostnames/reverse.js';
import { MonitorCore, type PassiveMonitorStats } from './core.js';

export type { PassiveMonitorStats } from './core.js';

const CANNOT_BLOCK = 'the passive monitor cannot block or allow flows: start `sudo flowtop agent` to block';
const NO_RULES = 'the passive monitor keeps no rules: start `sudo flowtop agent` to use rules';

export interface PassiveMonitorOptions {
  /** Source id used to tag events. */
  id?: string;
  /** Poll interval; new sockets appear within one interval. */
  intervalMs?: number;
  /** Time per poll allowed for rescanning known processes to find unknown sockets' owners. */
  ownerBudgetMs?: number;
  /** Names for remote addresses (e.g. filled from DNS answers elsewhere). */
  hostNames?: HostNameMap;
  /** Ask the resolver for PTR names of remote addresses no DNS answer named (off by default: it
   *  tells the DNS server every address this machine talks to). */
  reverseLookups?: boolean;
  /** Resolver for those lookups; default node:dns reverse(). */
  reverseResolver?: ReverseResolver;
  /** Use /proc/net instead of netlink (also chosen automatically when netlink fails). */
  forceProcNet?: boolean;
  now?: () => number;
}

export interface PassiveMonitor extends FlowSource {
  /** Runs one poll now (tests and benchmarks); returns the messages it produced. */
  pollNow(): ExtensionMessage[];
  stats(): PassiveMonitorStats;
}

function helloFor(reader: SocketReader, names: boolean): HelloMessage {
  const capabilities: Capability[] = reader.counters ? ['bytes'] : [];
  if (names) capabilities.push('host-names');
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    extension: { name: 'flowtop passive monitor', version: '1' },
    platform: 'linux',
    host: hostname(),
    capabilities,
    tokenKind: 'linux-pidfd-v1',
    mode: {
      passive: true,
      attribution: reader.kind === 'sock_diag'
        ? 'sock_diag dump + /proc fd scan, pidfd tokens'
        : `/proc/net + /proc fd scan, pidfd tokens (no byte counters: ${reader.fallbackReason ?? 'netlink unavailable'})`,
    },
  };
}

/** A monitor that has nothing to show, with the reason as its status (not Linux). */
function unavailableMonitor(id: string, reason: string): PassiveMonitor {
  return {
    id,
    events$: EMPTY,
    status$: new BehaviorSubject<ConnectionStatus>({ state: 'disconnected', reason }).asObservable(),
    send: () => ({ ok: false, error: reason }),
    close: () => undefined,
    pollNow: () => [],
    stats: () => ({ polls: 0, lastPollMs: 0, sockets: 0, flows: 0, reader: 'proc', ownerScans: 0, ownerScanMs: 0, ownerLinks: 0, unresolved: 0 }),
  };
}

export function createPassiveMonitor(options: PassiveMonitorOptions = {}): PassiveMonitor {
  const id = options.id ?? 'monitor';
  if (process.platform !== 'linux') {
    return unavailableMonitor(id, 'the passive monitor needs Linux; on macOS, start the flowtop network extension');
  }
  const intervalMs = Math.max(50, options.intervalMs ?? 1000);
  const now = options.now ?? Date.now;
  const reader = openSocketReader({ forceProc: options.forceProcNet === true });
  const names = options.hostNames ?? (options.reverseLookups ? new HostNameMap() : undefined);
  // a lookup that failed by a bug (not by DNS) is said where errors are shown; it is called only after
  // `output` below exists (lookups run after the first poll)
  const onUnexpected = (error: unknown): void => output.next({ source: id, message: { type: 'error', code: 'internal', message: `reverse lookup failed: ${error instanceof Error ? error.message : String(error)}` } });
  const reverse = names && options.reverseLookups ? new ReverseLookup(names, { resolver: options.reverseResolver, onUnexpected }) : undefined;
  const core = new MonitorCore(reader, { ownerBudgetMs: options.ownerBudgetMs ?? 50, hostNames: names, reverse, now });
  const hello = helloFor(reader, names !== undefined);

  const output = new Subject<SourceEvent>();
  const status = new BehaviorSubject<ConnectionStatus>({ state: 'connected', hello });
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const emit = (messages: ExtensionMessage[]): void => {
    for (const message of messages) output.next({ source: id, message });
  };

  const start = (): void => {
    if (timer || closed) return;
    timer = setInterval(() => {
      if (!closed) emit(core.poll());
    }, intervalMs);
    timer.unref();
  };

  // Each subscriber gets the hello and a snapshot of the live flows first, then live events; the
  // first subscription runs the first poll at once so rows are there from the first frame.
  const events$ = new Observable<SourceEvent>((subscriber) => {
    if (closed) {
      subscriber.complete();
      return undefined;
    }
    if (!core.polled) emit(core.poll());
    subscriber.next({ source: id, message: hello });
    for (const message of core.snapshot()) subscriber.next({ source: id, message });
    const sub = output.subscribe(subscriber);
    start();
    return () => sub.unsubscribe();
  });

  return {
    id,
    events$,
    status$: status.asObservable(),
    send(message: ClientMessage): SendResult {
      if (message.type === 'subscribe') return { ok: true };
      return { ok: false, error: message.type === 'verdict' ? CANNOT_BLOCK : NO_RULES };
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      reverse?.close();
      reader.close();
      status.next({ state: 'disconnected', reason: 'monitor closed' });
      status.complete();
      output.complete();
    },
    pollNow() {
      const messages = core.poll();
      emit(messages);
      return messages;
    },
    stats: () => core.stats(),
  };
}
