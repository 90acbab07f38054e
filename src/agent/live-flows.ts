// Flows the agent allowed and that still live: byte counters polled from sock_diag (one exact lookup
// with tcp_info per live flow while that costs less than one dump of the sockets, else a dump) and
// their ends — the socket gone, or for UDP an idle timeout. Clients get `bytes` and `end` messages,
// and a late subscriber gets the live flows in its snapshot.
import type { BytesMessage, EndMessage, Endpoint, FlowRecord } from '../protocol/messages.js';
import { TrafficTracker, indexByTuple, socketOf, startTrafficPoller, type SocketReader, type TrafficPoller, type TrafficUpdate } from '../traffic/index.js';
import { expectSystemError } from '../errno.js';
import type { ClosedSockets } from './io.js';

export interface LiveFlow {
  flow: FlowRecord;
  rx: number;
  tx: number;
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

export class LiveFlows {
  private readonly flows = new Map<string, LiveFlow>();
  private readonly tracker: TrafficTracker;
  private readonly poller: TrafficPoller;

  constructor(private readonly reader: SocketReader, private readonly options: LiveFlowsOptions) {
    // exact lookups while they cost less than one dump of the namespace's sockets, else one dump
    this.tracker = new TrafficTracker(reader, { strategy: 'auto' });
    this.poller = startTrafficPoller(this.tracker, (u) => this.apply(u), {
      intervalMs: options.intervalMs,
      onError: (e) => options.onError?.(e),
    });
  }

  get size(): number {
    return this.flows.size;
  }

  /** Starts tracking an allowed flow (TCP and UDP; other protocols have no socket to read). */
  add(flow: FlowRecord): void {
    if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') return;
    if (this.flows.size >= MAX_LIVE) {
      const oldest = this.flows.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    this.flows.set(flow.id, { flow, rx: 0, tx: 0 });
    this.tracker.track({
      id: flow.id,
      protocol: flow.protocol,
      local: flow.local,
      remote: flow.remote,
      ...(flow.protocol === 'udp' ? { idleMs: this.options.udpIdleMs } : {}),
      // an inbound connection has no socket of its own until the handshake ends and it is accepted
      ...(flow.direction === 'inbound' ? { graceMs: INBOUND_GRACE_MS } : {}),
    });
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
    const time = Date.now();
    const last = this.finalCounters(f, false);
    if (last) this.options.send({ type: 'bytes', counters: [last], time });
    this.options.send({ type: 'end', id, time, reason });
  }

  /** The counters of a TCP flow whose socket closed, when they moved past those last sent. */
  private finalCounters(f: LiveFlow, collected: boolean): { id: string; rx: number; tx: number } | undefined {
    if (f.flow.protocol !== 'tcp' || !this.options.closedSockets) return undefined;
    const c = this.options.closedSockets.counters(f.flow.local, f.flow.remote, f.flow.direction === 'outbound', collected);
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
    this.reader.close();
  }

  private forget(id: string): void {
    this.flows.delete(id);
    this.tracker.untrack(id);
  }

  private apply(u: TrafficUpdate): void {
    const counters: BytesMessage['counters'] = [];
    for (const c of u.counters) {
      const f = this.flows.get(c.id);
      if (!f) continue;
      f.rx = c.rx;
      f.tx = c.tx;
      counters.push({ id: c.id, rx: c.rx, tx: c.tx });
    }
    // after the sockets were listed: every socket missing from the list has closed by now
    if (u.ended.length > 0) this.options.closedSockets?.collect();
    for (const e of u.ended) {
      const f = this.flows.get(e.id);
      if (!f) continue;
      // a flow that closed since the last poll: its bytes since then, read as it closed
      const last = e.reason === 'closed' ? this.finalCounters(f, true) : undefined;
      if (last) counters.push(last);
    }
    if (counters.length > 0) this.options.send({ type: 'bytes', counters, time: u.time });
    for (const e of u.ended) {
      if (!this.flows.delete(e.id)) continue;
      const reason = e.reason === 'idle'
        ? `no traffic seen for ${Math.round(this.options.udpIdleMs / 1000)} s`
        : 'the socket closed';
      this.options.send({ type: 'end', id: e.id, time: u.time, reason });
    }
  }
}
