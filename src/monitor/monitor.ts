// The passive monitor: what `flowtop` shows when no extension socket is running. No privileges
// needed: one sock_diag dump per interval lists every TCP/UDP socket (with uid, inode and tcp_info
// counters), owners are found among the processes this user may read, and each flow carries the
// owner's Linux token so the attribution layer can verify it. It cannot block anything.
import { hostname } from 'node:os';
import { BehaviorSubject, EMPTY, Observable, Subject } from 'rxjs';
import type {
  BytesMessage, Capability, ClientMessage, EndMessage, ExtensionMessage, FlowRecord, HelloMessage,
} from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from '../source/types.js';
import type { InetSocket } from '../native/linux/sock-diag-dump.js';
import { makeLinuxToken } from '../native/linux/token.js';
import { decodeLinuxToken } from '../protocol/tokens.js';
import { TrafficTracker } from '../traffic/tracker.js';
import { openSocketReader, type SocketReader } from '../traffic/reader.js';
import { HostNameMap } from '../hostnames/map.js';
import { ReverseLookup, type ReverseResolver } from '../hostnames/reverse.js';
import { ListenerIndex, isFlowSocket } from './classify.js';
import { OwnerIndex } from './owners.js';

const CANNOT_BLOCK = 'the passive monitor cannot block or allow flows: start `sudo flowtop agent` to block';

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

export interface PassiveMonitorStats {
  polls: number;
  lastPollMs: number;
  sockets: number;
  flows: number;
  reader: SocketReader['kind'];
  ownerScans: number;
  ownerScanMs: number;
  /** fd links read in the last poll. */
  ownerLinks: number;
  unresolved: number;
}

export interface PassiveMonitor extends FlowSource {
  /** Runs one poll now (tests and benchmarks); returns the messages it produced. */
  pollNow(): ExtensionMessage[];
  stats(): PassiveMonitorStats;
}

interface LiveFlow {
  record: FlowRecord;
  /** Still looking for its owner (budget ran out, or the owner was not confirmed). */
  unresolved: boolean;
  /** Waiting for a reverse lookup to name its remote. */
  awaitingName: boolean;
}

/** Cookies (sock_diag) count up from 1 and inodes (/proc/net) are unique among live sockets:
 *  a number key either way, negative for inodes so the two never collide. */
function socketKey(s: InetSocket): number {
  return s.cookie ?? -s.inode;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
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
  const ownerBudgetMs = options.ownerBudgetMs ?? 50;
  const now = options.now ?? Date.now;
  const myUid = process.geteuid?.() ?? 0;
  const privileged = myUid === 0;
  const reader = openSocketReader({ forceProc: options.forceProcNet === true });
  const tracker = new TrafficTracker(undefined);
  const owners = new OwnerIndex({ now });
  const names = options.hostNames ?? (options.reverseLookups ? new HostNameMap() : undefined);
  const reverse = names && options.reverseLookups ? new ReverseLookup(names, { resolver: options.reverseResolver }) : undefined;

  const capabilities: Capability[] = reader.counters ? ['bytes'] : [];
  if (names) capabilities.push('host-names');
  const hello: HelloMessage = {
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

  const live = new Map<number, LiveFlow>(); // by socket key
  const byId = new Map<string, number>(); // flow id → socket key
  const counters = new Map<string, { rx: number; tx: number }>();
  const output = new Subject<SourceEvent>();
  const status = new BehaviorSubject<ConnectionStatus>({ state: 'connected', hello });
  let closed = false;
  let polled = false;
  let timer: NodeJS.Timeout | undefined;
  let lastError = '';
  const stats: PassiveMonitorStats = {
    polls: 0, lastPollMs: 0, sockets: 0, flows: 0, reader: reader.kind, ownerScans: 0, ownerScanMs: 0, ownerLinks: 0, unresolved: 0,
  };

  // Tokens made in this poll, by PID: 10,000 sockets of one process need one token, not 10,000.
  let tokens = new Map<number, Buffer | undefined>();

  const ownerFor = (s: InetSocket, record: FlowRecord): boolean => {
    delete record.token;
    delete record.pid;
    delete record.ownerError;
    if (!privileged && s.uid !== myUid) {
      record.ownerError = `owned by uid ${s.uid}; no permission to see its process (run as root or \`sudo flowtop agent\`)`;
      return true;
    }
    const owner = owners.ownerOf(s.inode);
    if (!owner) {
      if (owners.exhausted()) {
        record.ownerError = privileged
          ? 'no process in view holds this socket (another PID namespace, or just closed)'
          : 'no process of yours holds this socket (another PID namespace, or a process you may not read)';
        return true;
      }
      record.ownerError = 'owner not found yet';
      return false;
    }
    if (!tokens.has(owner.pid)) tokens.set(owner.pid, makeLinuxToken(owner.pid));
    const token = tokens.get(owner.pid);
    // Re-check after reading by PID: the token must name the instance seen holding the socket (same
    // start time), or the PID was reused in between.
    if (!token || decodeLinuxToken(token)?.startTime !== owner.startTime) {
      owners.forget(s.inode);
      record.ownerError = 'owner not found yet';
      return false; // look again next poll (another process may hold it too, e.g. after a fork)
    }
    record.token = token.toString('base64');
    record.pid = owner.pid;
    return true;
  };

  const nameFor = (record: FlowRecord): boolean => {
    if (!names) return false;
    const entry = names.lookup(record.remote.address);
    if (entry) {
      record.remoteHost = { name: entry.name, source: entry.source };
      return false;
    }
    if (reverse && !isLoopback(record.remote.address)) {
      reverse.request(record.remote.address);
      return true;
    }
    return false;
  };

  const poll = (): ExtensionMessage[] => {
    const started = performance.now();
    const time = now();
    const out: ExtensionMessage[] = [];
    let sockets: InetSocket[];
    try {
      sockets = reader.dumpAll();
    } catch (error) {
      const message = `reading sockets failed: ${error instanceof Error ? error.message : String(error)}`;
      if (message !== lastError) out.push({ type: 'error', code: 'internal', message });
      lastError = message;
      return out;
    }
    lastError = '';
    tokens = new Map();
    // The first poll finds the owners of every existing socket at once: a larger budget, once.
    const budget = polled ? ownerBudgetMs : Math.max(ownerBudgetMs, 1000);
    const ownersStarted = performance.now();
    owners.refresh(ownersStarted + budget);
    const listeners = new ListenerIndex(sockets);

    const fresh: InetSocket[] = [];
    const seen = new Set<number>();
    for (const s of sockets) {
      if (!isFlowSocket(s)) continue;
      const key = socketKey(s);
      seen.add(key);
      if (!live.has(key)) fresh.push(s);
    }
    // Owners of new and still-unresolved sockets: rescan known processes within the budget.
    const wanted: number[] = [];
    const uids = new Set<number>();
    const retry: Array<[InetSocket, LiveFlow]> = [];
    for (const s of fresh) if (privileged || s.uid === myUid) (wanted.push(s.inode), uids.add(s.uid));
    let retryKeys = 0;
    for (const flow of live.values()) if (flow.unresolved || flow.awaitingName) retryKeys++;
    if (retryKeys > 0) {
      for (const s of sockets) {
        const flow = live.get(socketKey(s));
        if (!flow || !(flow.unresolved || flow.awaitingName)) continue;
        retry.push([s, flow]);
        if (flow.unresolved) (wanted.push(s.inode), uids.add(s.uid));
      }
    }
    if (wanted.length > 0) {
      let liveInodes: Set<number> | undefined;
      const isLive = (inode: number): boolean => {
        if (!liveInodes) {
          liveInodes = new Set();
          for (const x of sockets) liveInodes.add(x.inode);
        }
        return liveInodes.has(inode);
      };
      owners.resolve(wanted, uids, ownersStarted + budget, isLive);
    }

    for (const s of fresh) {
      const record: FlowRecord = {
        id: `${s.protocol}-${s.cookie ?? `i${s.inode}`}`,
        time,
        direction: listeners.directionOf(s),
        protocol: s.protocol,
        family: s.family,
        local: s.local,
        remote: s.remote,
        uid: s.uid,
      };
      const resolved = ownerFor(s, record);
      const awaitingName = nameFor(record);
      live.set(socketKey(s), { record, unresolved: !resolved, awaitingName });
      byId.set(record.id, socketKey(s));
      tracker.track({ id: record.id, protocol: s.protocol, local: s.local, remote: s.remote, inode: s.inode });
      out.push({ type: 'flow', flow: record });
    }
    for (const [s, flow] of retry) {
      let changed = false;
      if (flow.unresolved) {
        const record = { ...flow.record };
        flow.unresolved = !ownerFor(s, record);
        if (record.token !== flow.record.token || record.ownerError !== flow.record.ownerError) {
          flow.record = record;
          changed = true;
        }
      }
      if (flow.awaitingName && names) {
        const entry = names.lookup(flow.record.remote.address);
        if (entry) {
          flow.record = { ...flow.record, remoteHost: { name: entry.name, source: entry.source } };
          flow.awaitingName = false;
          changed = true;
        } else if (!reverse || reverse.pending === 0) flow.awaitingName = false;
      }
      if (changed) out.push({ type: 'flow', flow: flow.record });
    }

    const update = tracker.applyDump(sockets, time);
    if (update.counters.length > 0) {
      for (const c of update.counters) counters.set(c.id, { rx: c.rx, tx: c.tx });
      const bytes: BytesMessage = { type: 'bytes', counters: update.counters, time };
      out.push(bytes);
    }
    for (const end of update.ended) {
      const key = byId.get(end.id);
      if (key !== undefined) live.delete(key);
      byId.delete(end.id);
      counters.delete(end.id);
      const message: EndMessage = { type: 'end', id: end.id, time, reason: end.reason };
      out.push(message);
    }
    // A socket the dump no longer lists but the tracker has not ended (cannot happen with one dump;
    // kept as a guard so `live` can never grow without bound).
    if (live.size > seen.size + update.ended.length) {
      for (const [key, flow] of live) {
        if (seen.has(key)) continue;
        live.delete(key);
        byId.delete(flow.record.id);
        tracker.untrack(flow.record.id);
        out.push({ type: 'end', id: flow.record.id, time, reason: 'closed' });
      }
    }

    const ownerStats = owners.stats();
    stats.polls++;
    stats.lastPollMs = performance.now() - started;
    stats.sockets = sockets.length;
    stats.flows = live.size;
    stats.ownerScans = ownerStats.scans;
    stats.ownerScanMs = ownerStats.scanMs;
    stats.ownerLinks = ownerStats.links;
    let unresolved = 0;
    for (const f of live.values()) if (f.unresolved) unresolved++;
    stats.unresolved = unresolved;
    polled = true;
    return out;
  };

  const emit = (messages: ExtensionMessage[]): void => {
    for (const message of messages) output.next({ source: id, message });
  };

  /** A poll that never throws: an unexpected failure becomes an error message, and the next poll
   *  tries again. */
  const safePoll = (): ExtensionMessage[] => {
    try {
      return poll();
    } catch (error) {
      return [{ type: 'error', code: 'internal', message: `passive monitor poll failed: ${error instanceof Error ? error.message : String(error)}` }];
    }
  };

  const start = (): void => {
    if (timer || closed) return;
    timer = setInterval(() => {
      if (!closed) emit(safePoll());
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
    if (!polled) emit(safePoll());
    subscriber.next({ source: id, message: hello });
    for (const flow of live.values()) subscriber.next({ source: id, message: { type: 'flow', flow: flow.record } });
    if (counters.size > 0) {
      subscriber.next({ source: id, message: { type: 'bytes', counters: [...counters].map(([fid, c]) => ({ id: fid, ...c })), time: now() } });
    }
    const sub = output.subscribe(subscriber);
    start();
    return () => sub.unsubscribe();
  });

  return {
    id,
    events$,
    status$: status.asObservable(),
    send(message: ClientMessage): SendResult {
      switch (message.type) {
        case 'subscribe':
          return { ok: true };
        case 'verdict':
          return { ok: false, error: CANNOT_BLOCK };
        default:
          return { ok: false, error: 'the passive monitor keeps no rules: start `sudo flowtop agent` to use rules' };
      }
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
      const messages = safePoll();
      emit(messages);
      return messages;
    },
    stats: () => ({ ...stats }),
  };
}
