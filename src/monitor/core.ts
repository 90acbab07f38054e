// One poll of the passive monitor, as a state machine: a socket dump in, protocol messages out.
// New flow sockets become `flow` messages (owner, token, direction, host name), counters that moved
// become one `bytes` message, sockets that went away become `end` messages. No timers, no streams:
// monitor.ts schedules polls and turns messages into a FlowSource.
import type { ExtensionMessage, FlowRecord } from '../protocol/messages.js';
import { decodeLinuxToken, encodeLinuxToken } from '../protocol/tokens.js';
import type { InetSocket } from '../native/linux/sock-diag-dump.js';
import { makeLinuxToken, readExecTag } from '../native/linux/token.js';
import { TrafficTracker } from '../traffic/tracker.js';
import type { SocketReader } from '../traffic/reader.js';
import type { HostNameMap } from '../hostnames/map.js';
import type { ReverseLookup } from '../hostnames/reverse.js';
import { ListenerIndex, isFlowSocket } from './classify.js';
import { OwnerIndex } from './owners.js';

export interface MonitorCoreOptions {
  /** Time per poll for finding unknown sockets' owners (the first poll gets at least a second). */
  ownerBudgetMs: number;
  hostNames?: HostNameMap;
  reverse?: ReverseLookup;
  now: () => number;
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

export class MonitorCore {
  private readonly live = new Map<number, LiveFlow>(); // by socket key
  private readonly byId = new Map<string, number>(); // flow id → socket key
  private readonly counters = new Map<string, { rx: number; tx: number }>();
  private readonly tracker = new TrafficTracker(undefined);
  private readonly owners: OwnerIndex;
  private readonly myUid = process.geteuid?.() ?? 0;
  private readonly privileged = this.myUid === 0;
  /** Tokens made in this poll, by PID: 10,000 sockets of one process need one token, not 10,000. */
  private tokens = new Map<number, Buffer | undefined>();
  private lastError = '';
  private readonly statistics: PassiveMonitorStats;
  polled = false;

  constructor(private readonly reader: SocketReader, private readonly options: MonitorCoreOptions) {
    this.owners = new OwnerIndex({ now: options.now });
    this.statistics = {
      polls: 0, lastPollMs: 0, sockets: 0, flows: 0, reader: reader.kind, ownerScans: 0, ownerScanMs: 0, ownerLinks: 0, unresolved: 0,
    };
  }

  stats(): PassiveMonitorStats {
    return { ...this.statistics };
  }

  /** The live flows and their counters, for a subscriber that arrives now. */
  snapshot(): ExtensionMessage[] {
    const out: ExtensionMessage[] = [];
    for (const flow of this.live.values()) out.push({ type: 'flow', flow: flow.record });
    if (this.counters.size > 0) {
      out.push({ type: 'bytes', counters: [...this.counters].map(([id, c]) => ({ id, ...c })), time: this.options.now() });
    }
    return out;
  }

  /** One poll. Never throws: an unexpected failure becomes an error message and the next poll tries
   *  again. */
  poll(): ExtensionMessage[] {
    try {
      return this.pollOnce();
    } catch (error) {
      return [{ type: 'error', code: 'internal', message: `passive monitor poll failed: ${error instanceof Error ? error.message : String(error)}` }];
    }
  }

  private pollOnce(): ExtensionMessage[] {
    const started = performance.now();
    const time = this.options.now();
    const out: ExtensionMessage[] = [];
    let sockets: InetSocket[];
    try {
      sockets = this.reader.dumpAll();
    } catch (error) {
      // Said once per distinct failure, not once a second.
      const message = `reading sockets failed: ${error instanceof Error ? error.message : String(error)}`;
      if (message !== this.lastError) out.push({ type: 'error', code: 'internal', message });
      this.lastError = message;
      return out;
    }
    this.lastError = '';
    this.tokens = new Map();
    const budget = this.polled ? this.options.ownerBudgetMs : Math.max(this.options.ownerBudgetMs, 1000);
    const deadline = performance.now() + budget;
    this.owners.refresh(deadline);

    const fresh: InetSocket[] = [];
    const retry: Array<[InetSocket, LiveFlow]> = [];
    const wanted: number[] = [];
    const uids = new Set<number>();
    for (const s of sockets) {
      if (!isFlowSocket(s)) continue;
      const flow = this.live.get(socketKey(s));
      if (!flow) {
        fresh.push(s);
        if (this.privileged || s.uid === this.myUid) (wanted.push(s.inode), uids.add(s.uid));
      } else if (flow.unresolved || flow.awaitingName) {
        retry.push([s, flow]);
        if (flow.unresolved) (wanted.push(s.inode), uids.add(s.uid));
      }
    }
    if (wanted.length > 0) {
      const isLive = liveInodes(sockets);
      this.owners.resolve(wanted, uids, deadline, isLive);
      this.owners.checkParents(wanted, deadline, isLive);
    }

    const listeners = fresh.length > 0 ? new ListenerIndex(sockets) : undefined;
    for (const s of fresh) out.push({ type: 'flow', flow: this.addFlow(s, listeners!, time) });
    for (const [s, flow] of retry) if (this.recheck(s, flow)) out.push({ type: 'flow', flow: flow.record });

    const update = this.tracker.applyDump(sockets, time);
    if (update.counters.length > 0) {
      for (const c of update.counters) this.counters.set(c.id, { rx: c.rx, tx: c.tx });
      out.push({ type: 'bytes', counters: update.counters, time });
    }
    for (const end of update.ended) {
      const key = this.byId.get(end.id);
      if (key !== undefined) this.live.delete(key);
      this.byId.delete(end.id);
      this.counters.delete(end.id);
      out.push({ type: 'end', id: end.id, time, reason: end.reason });
    }
    this.polled = true;
    this.record(started, sockets.length);
    return out;
  }

  private addFlow(s: InetSocket, listeners: ListenerIndex, time: number): FlowRecord {
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
    const resolved = this.ownerFor(s, record);
    const awaitingName = this.nameFor(record);
    this.live.set(socketKey(s), { record, unresolved: !resolved, awaitingName });
    this.byId.set(record.id, socketKey(s));
    this.tracker.track({ id: record.id, protocol: s.protocol, local: s.local, remote: s.remote, inode: s.inode });
    return record;
  }

  /** Tries again what a flow was missing (owner, name); true when its record changed. */
  private recheck(s: InetSocket, flow: LiveFlow): boolean {
    let changed = false;
    if (flow.unresolved) {
      const record = { ...flow.record };
      flow.unresolved = !this.ownerFor(s, record);
      if (record.token !== flow.record.token || record.ownerError !== flow.record.ownerError) {
        flow.record = record;
        changed = true;
      }
    }
    const names = this.options.hostNames;
    if (flow.awaitingName && names) {
      const entry = names.lookup(flow.record.remote.address);
      if (entry) {
        flow.record = { ...flow.record, remoteHost: { name: entry.name, source: entry.source } };
        flow.awaitingName = false;
        changed = true;
      } else if (!this.options.reverse || this.options.reverse.pending === 0) flow.awaitingName = false;
    }
    return changed;
  }

  /** Fills token/pid or ownerError; false while the owner may still be found by a later poll. */
  private ownerFor(s: InetSocket, record: FlowRecord): boolean {
    delete record.token;
    delete record.pid;
    delete record.ownerError;
    if (!this.privileged && s.uid !== this.myUid) {
      record.ownerError = `owned by uid ${s.uid}; no permission to see its process (run as root or \`sudo flowtop agent\`)`;
      return true;
    }
    const owner = this.owners.ownerOf(s.inode);
    if (!owner) {
      if (this.owners.exhausted()) {
        record.ownerError = this.privileged
          ? 'no process in view holds this socket (another PID namespace, or just closed)'
          : 'no process of yours holds this socket (another PID namespace, or a process you may not read)';
        return true;
      }
      record.ownerError = 'owner not found yet';
      return false;
    }
    if (!this.tokens.has(owner.pid)) this.tokens.set(owner.pid, makeLinuxToken(owner.pid));
    const token = this.tokens.get(owner.pid);
    // Re-check after reading by PID: the token must name the instance seen holding the socket (same
    // start time), or the PID was reused in between.
    if (!token || decodeLinuxToken(token)?.startTime !== owner.startTime) {
      this.owners.forget(s.inode);
      record.ownerError = 'owner not found yet';
      return false; // look again next poll (another process may hold it too, e.g. after a fork)
    }
    record.token = this.programKnown(s.inode, token) ? token.toString('base64') : withoutProgram(token).toString('base64');
    record.pid = owner.pid;
    return true;
  }

  /** False when processes running different programs hold the socket (a child that connected and
   *  exec'd another program while its parent kept the socket, say): the monitor cannot tell which
   *  of them started the connection, so the token must not vouch for the owner's program. */
  private programKnown(inode: number, token: Buffer): boolean {
    const holders = this.owners.holders(inode);
    if (holders.length === 0) return true;
    const tag = decodeLinuxToken(token)?.execTag ?? 0;
    return holders.every((pid) => readExecTag(pid) === tag);
  }

  /** Fills remoteHost from the map; true when a reverse lookup was asked for instead. */
  private nameFor(record: FlowRecord): boolean {
    const names = this.options.hostNames;
    if (!names) return false;
    const entry = names.lookup(record.remote.address);
    if (entry) {
      record.remoteHost = { name: entry.name, source: entry.source };
      return false;
    }
    if (this.options.reverse && !isLoopback(record.remote.address)) {
      this.options.reverse.request(record.remote.address);
      return true;
    }
    return false;
  }

  private record(started: number, sockets: number): void {
    const o = this.owners.stats();
    let unresolved = 0;
    for (const f of this.live.values()) if (f.unresolved) unresolved++;
    Object.assign(this.statistics, {
      polls: this.statistics.polls + 1,
      lastPollMs: performance.now() - started,
      sockets,
      flows: this.live.size,
      ownerScans: o.scans,
      ownerScanMs: o.scanMs,
      ownerLinks: o.links,
      unresolved,
    });
  }
}

/** The same process instance with exec tag 0: which program it is about is not known. */
function withoutProgram(token: Buffer): Buffer {
  const t = decodeLinuxToken(token);
  return t ? encodeLinuxToken({ ...t, execTag: 0 }) : token;
}

/** Whether an inode is a live socket in this dump (the set is built only if asked). */
function liveInodes(sockets: readonly InetSocket[]): (inode: number) => boolean {
  let set: Set<number> | undefined;
  return (inode) => {
    if (!set) {
      set = new Set();
      for (const s of sockets) set.add(s.inode);
    }
    return set.has(inode);
  };
}
