// Flows the agent allowed and that still live: byte counters polled from sock_diag (one exact lookup
// with tcp_info per live flow while that costs less than one dump of the sockets, else a dump) and
// their ends — the socket gone, or for UDP an idle timeout. A TCP flow's end comes sooner where the
// BPF recorder sees sockets close: what closed is read every CLOSED_INTERVAL_MS, and a flow whose
// socket closed before it got here ends as it arrives — short flows are let go within a tenth of a
// second instead of being held (and polled) for up to a second. Clients get `bytes` and `end`
// messages, and a late subscriber gets the live flows in its snapshot.
import type { BytesMessage, EndMessage, Endpoint, FlowRecord } from '../protocol/messages.js';
import { TrafficTracker, indexByTuple, socketOf, startTrafficPoller, type SocketReader, type TrafficPoller, type TrafficUpdate } from '../traffic/index.js';
import { expectSystemError } from '../errno.js';
import type { ClosedSocket, ClosedSockets } from './io.js';
import { portPairKey } from '../net/port-pair.js';

export interface LiveFlow {
  flow: FlowRecord;
  rx: number;
  tx: number;
  /** When it was added (ms): a TCP flow is handed to the tracker at the first poll after. */
  since: number;
}

export interface LiveFlowsOptions {
  /** A UDP flow ends after this long without activity seen (the agent only sees a flow's first
   *  datagram: its socket's presence is the activity it can observe). */
  udpIdleMs: number;
  intervalMs: number;
  send: (msg: BytesMessage | EndMessage) => void;
  onError?: (error: unknown) => void;
  /** TCP sockets' counters as they closed (the BPF recorder's close-counters map), for the flows
   *  that end before the next poll reads them. */
  closedSockets?: ClosedSockets;
}

/** Bound on flows tracked at once: beyond it the oldest is forgotten (its end is then not reported). */
const MAX_LIVE = 100_000;
/** How long an inbound flow may go without an owned socket before it counts as ended. */
const INBOUND_GRACE_MS = 5000;
/** How often the sockets that closed are read (one batch syscall when any TCP flow is live). */
const CLOSED_INTERVAL_MS = 100;
const END_REASON_CLOSED = 'the socket closed';

export class LiveFlows {
  private readonly flows = new Map<string, LiveFlow>();
  private readonly tracker: TrafficTracker;
  private readonly poller: TrafficPoller;
  /** Live TCP flows by their ports (an id, or several when ports repeat across addresses), for
   *  the sockets that closed. Only kept when closed sockets can be read. */
  private readonly tcpByPorts = new Map<number, string | string[]>();
  private readonly closedTimer: ReturnType<typeof setInterval> | undefined;
  /** TCP flows not handed to the tracker yet (ids, in the order added): most short flows end by
   *  their close before the next poll, and are never tracked at all. */
  private waiting: string[] = [];

  constructor(private readonly reader: SocketReader, private readonly options: LiveFlowsOptions) {
    // exact lookups while they cost less than one dump of the namespace's sockets, else one dump
    this.tracker = new TrafficTracker(reader, { strategy: 'auto' });
    this.poller = startTrafficPoller(this.tracker, (u) => this.apply(u), {
      intervalMs: options.intervalMs,
      onError: (e) => options.onError?.(e),
      beforePoll: () => this.trackWaiting(),
    });
    if (options.closedSockets) {
      this.closedTimer = setInterval(() => {
        try {
          this.endClosed();
        } catch (error) {
          options.onError?.(error);
        }
      }, CLOSED_INTERVAL_MS);
      this.closedTimer.unref();
    }
  }

  get size(): number {
    return this.flows.size;
  }

  /** Starts tracking an allowed flow (TCP and UDP; other protocols have no socket to read). */
  add(flow: FlowRecord): void {
    if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') return;
    if (this.flows.has(flow.id)) this.forget(flow.id); // added again (kept while nobody watched)
    if (this.flows.size >= MAX_LIVE) {
      const oldest = this.flows.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    const live: LiveFlow = { flow, rx: 0, tx: 0, since: Date.now() };
    // closed before it got here (its verdict came from a queue thread in a batch): ended at once
    if (flow.protocol === 'tcp' && this.options.closedSockets) {
      const last = this.options.closedSockets.counters(flow.local, flow.remote, flow.direction === 'outbound', 'collected');
      if (last) {
        this.sendEnd(flow.id, last.rx > 0 || last.tx > 0 ? { id: flow.id, rx: last.rx, tx: last.tx } : undefined, END_REASON_CLOSED, endTime(flow, last));
        return;
      }
      this.indexPorts(flow);
      this.flows.set(flow.id, live);
      this.waiting.push(flow.id);
      return;
    }
    this.flows.set(flow.id, live);
    this.track(live);
  }

  private track(live: LiveFlow): void {
    const flow = live.flow;
    this.tracker.track({
      id: flow.id,
      protocol: flow.protocol as 'tcp' | 'udp',
      local: flow.local,
      remote: flow.remote,
      ...(flow.protocol === 'udp' ? { idleMs: this.options.udpIdleMs } : {}),
      // an inbound connection has no socket of its own until the handshake ends and it is accepted
      ...(flow.direction === 'inbound' ? { graceMs: INBOUND_GRACE_MS } : {}),
    }, live.since);
  }

  /** Hands the TCP flows still live since they were added to the tracker, before it polls. */
  private trackWaiting(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const id of waiting) {
      const live = this.flows.get(id);
      if (live && !this.tracker.has(id)) this.track(live);
    }
  }

  /** Of `flows`, the ones whose socket still exists (one dump of the namespace's sockets): flows the
   *  agent allowed while nobody watched, checked before they are shown as live. All of them when the
   *  sockets cannot be read (the first poll then ends the gone ones). */
  present(flows: readonly FlowRecord[]): FlowRecord[] {
    const open = this.openSockets();
    return open ? flows.filter((f) => open(f.protocol, f.local, f.remote)) : [...flows];
  }

  /** One dump of the namespace's sockets, as a test of whether a flow's socket still exists (its
   *  4-tuple, or for UDP an unconnected socket on its local end); undefined when they cannot be read. */
  openSockets(): ((protocol: string, local: Endpoint, remote: Endpoint) => boolean) | undefined {
    let index: ReturnType<typeof indexByTuple>;
    try {
      index = indexByTuple(this.reader.dumpAll());
    } catch (error) {
      expectSystemError(error); // the kernel would not list them (a bug is not hidden as "unknown")
      return undefined;
    }
    return (protocol, local, remote) => (protocol === 'tcp' || protocol === 'udp') && socketOf(index, protocol, local, remote) !== undefined;
  }

  get(id: string): LiveFlow | undefined {
    return this.flows.get(id);
  }

  all(): IterableIterator<LiveFlow> {
    return this.flows.values();
  }

  /** Ends a flow now (e.g. its socket was destroyed): tells the clients why. */
  end(id: string, reason: string): void {
    const f = this.flows.get(id);
    if (!f) return;
    this.forget(id);
    this.sendEnd(id, this.finalCounters(f, false), reason);
  }

  /** A flow's end, after its last counters when they moved. */
  private sendEnd(id: string, last: { id: string; rx: number; tx: number } | undefined, reason: string, time = Date.now()): void {
    if (last) this.options.send({ type: 'bytes', counters: [last], time });
    this.options.send({ type: 'end', id, time, reason });
  }

  /** The counters of a TCP flow whose socket closed, when they moved past those last sent. */
  private finalCounters(f: LiveFlow, collected: boolean): { id: string; rx: number; tx: number } | undefined {
    if (f.flow.protocol !== 'tcp' || !this.options.closedSockets) return undefined;
    const c = this.options.closedSockets.counters(f.flow.local, f.flow.remote, f.flow.direction === 'outbound', collected ? 'after-collect' : 'anywhere');
    if (!c || c.rx < f.rx || c.tx < f.tx || (c.rx === f.rx && c.tx === f.tx)) return undefined;
    f.rx = c.rx;
    f.tx = c.tx;
    return { id: f.flow.id, rx: c.rx, tx: c.tx };
  }

  /** Polls now, outside the schedule. */
  pollNow(): void {
    this.poller.pollNow();
  }

  close(): void {
    this.poller.stop();
    if (this.closedTimer) clearInterval(this.closedTimer);
    this.reader.close();
  }

  private forget(id: string): void {
    const f = this.flows.get(id);
    if (!f) return;
    this.flows.delete(id);
    this.tracker.untrack(id);
    this.unindexPorts(f.flow);
  }

  private indexPorts(flow: FlowRecord): void {
    if (!this.options.closedSockets) return;
    const key = portPairKey(flow.local.port, flow.remote.port);
    const ids = this.tcpByPorts.get(key);
    if (ids === undefined) this.tcpByPorts.set(key, flow.id);
    else if (typeof ids === 'string') this.tcpByPorts.set(key, [ids, flow.id]);
    else ids.push(flow.id);
  }

  private unindexPorts(flow: FlowRecord): void {
    if (flow.protocol !== 'tcp' || !this.options.closedSockets) return;
    const key = portPairKey(flow.local.port, flow.remote.port);
    const ids = this.tcpByPorts.get(key);
    if (ids === flow.id) this.tcpByPorts.delete(key);
    else if (Array.isArray(ids)) {
      const rest = ids.filter((id) => id !== flow.id);
      if (rest.length === 1) this.tcpByPorts.set(key, rest[0]!);
      else if (rest.length === 0) this.tcpByPorts.delete(key);
      else this.tcpByPorts.set(key, rest);
    }
  }

  /** The final counters of a TCP socket that closed before its flow got here (in what the last read
   *  took; the socket is then taken), by its ends as the close-counters map keys them. */
  closedBefore(local: Uint32Array, localPort: number, remote: Uint32Array, remotePort: number, connected: boolean): ClosedSocket | undefined {
    return this.options.closedSockets?.collectedCounters(local, localPort, remote, remotePort, connected);
  }

  /** Reads the sockets that closed now, before a batch of flows is added: those whose socket has
   *  already closed (a connection shorter than the queue thread's batch) end as they arrive, never
   *  entering the live table. */
  readClosed(): void {
    const closedSockets = this.options.closedSockets;
    if (!closedSockets) return;
    if (this.tcpByPorts.size === 0) closedSockets.collect(false);
    else this.endClosed();
  }

  /** Ends the live TCP flows whose sockets closed since the last read, with their final counters.
   *  Of flows sharing both ports, the one whose addresses match; the oldest first. */
  private endClosed(): void {
    const closedSockets = this.options.closedSockets;
    if (!closedSockets || this.tcpByPorts.size === 0) return;
    const closed = closedSockets.collect();
    if (closed.length === 0) return;
    const time = Date.now();
    const counters: BytesMessage['counters'] = [];
    const ended: Array<[id: string, time: number]> = [];
    for (const ports of closed) {
      const ids = this.tcpByPorts.get(ports);
      if (ids === undefined) continue;
      for (const id of typeof ids === 'string' ? [ids] : [...ids]) {
        const f = this.flows.get(id);
        if (!f) continue;
        const last = closedSockets.counters(f.flow.local, f.flow.remote, f.flow.direction === 'outbound', 'collected');
        if (!last) continue; // another socket on these ports (other addresses)
        if (last.rx > f.rx || last.tx > f.tx) counters.push({ id, rx: Math.max(f.rx, last.rx), tx: Math.max(f.tx, last.tx) });
        this.forget(id);
        ended.push([id, endTime(f.flow, last, time)]);
        break;
      }
    }
    if (counters.length > 0) this.options.send({ type: 'bytes', counters, time });
    for (const [id, at] of ended) this.options.send({ type: 'end', id, time: at, reason: END_REASON_CLOSED });
  }

  private apply(u: TrafficUpdate): void {
    // after the sockets were listed: every socket missing from the list has closed by now; the
    // flows of those that closed since the last read end first, with their final counters
    if (u.ended.length > 0) this.endClosed();
    const counters: BytesMessage['counters'] = [];
    for (const c of u.counters) {
      const f = this.flows.get(c.id);
      if (!f) continue;
      f.rx = c.rx;
      f.tx = c.tx;
      counters.push({ id: c.id, rx: c.rx, tx: c.tx });
    }
    for (const e of u.ended) {
      const f = this.flows.get(e.id);
      if (!f) continue;
      // a flow that closed since the last poll: its bytes since then, read as it closed
      const last = e.reason === 'closed' ? this.finalCounters(f, true) : undefined;
      if (last) counters.push(last);
    }
    if (counters.length > 0) this.options.send({ type: 'bytes', counters, time: u.time });
    for (const e of u.ended) {
      const f = this.flows.get(e.id);
      if (!f) continue;
      this.flows.delete(e.id); // the tracker let it go already
      this.unindexPorts(f.flow);
      const reason = e.reason === 'idle'
        ? `no traffic seen for ${Math.round(this.options.udpIdleMs / 1000)} s`
        : END_REASON_CLOSED;
      this.options.send({ type: 'end', id: e.id, time: u.time, reason });
    }
  }
}

/** When a flow whose socket closed ended: the close as the kernel stamped it, never before the flow
 *  began (the two clocks are read apart); `fallback` when the close time is not known. */
export function endTime(flow: Pick<FlowRecord, 'time'>, closed: ClosedSocket, fallback = Date.now()): number {
  const at = closed.closedAt;
  return at !== undefined && Number.isFinite(at) ? Math.min(fallback, Math.max(flow.time, at)) : fallback;
}
