// Builds a scenario file from code, so long recordings stay consistent (every bytes and end line names
// a flow that started, counters only grow). The output is plain NDJSON in the documented format;
// nothing at run time depends on this builder.
import type { Attribution } from '../../src/attribution/types.js';
import type { Action, Capability, Direction, RemoteHost, TransportProtocol, Verdict } from '../../src/protocol/messages.js';

export interface Header {
  name: string;
  description: string;
  host: string;
  lengthMs: number;
  defaultAction: Action;
  timeoutMs: number;
  attributionNote: string;
}

/** A process as the recording knows it: its token(s) and what attributing them gave. */
export interface Proc {
  token: string;
  pid: number;
  uid: number;
  /** Set for a helper acting for an app: the app's token goes in appToken. */
  app?: Proc;
}

export interface Connection {
  at: number;
  id: string;
  proc: Proc;
  remote: { address: string; port: number };
  host?: string;
  hostSource?: RemoteHost['source'];
  protocol?: TransportProtocol;
  direction?: Direction;
  local?: { address: string; port: number };
  /** How long it stays open (ms); undefined: open until the end of the scenario. */
  durationMs?: number;
  /** Bytes per second, received and sent; 0 for no counters. */
  rxRate?: number;
  txRate?: number;
  tickMs?: number;
  pending?: { deadlineMs: number; default?: Action };
  verdict?: Verdict;
  endReason?: string;
  ownerError?: string;
}

type Event = { at: number; order: number; seq: number; line: unknown };

const COUNTER_GRID_MS = 250;
const CAPABILITIES: Capability[] = ['verdicts', 'end-flows', 'rules', 'bytes', 'host-names'];

export class ScenarioBuilder {
  private readonly attributions: unknown[] = [];
  private readonly events: Event[] = [];
  private readonly bytesAt = new Map<number, Map<string, { id: string; rx: number; tx: number }>>();
  private seq = 0;
  private nextPort = 49_731;

  constructor(private readonly header: Header, private readonly localV4: string, private readonly localV6: string, private readonly random: () => number) {}

  attribution(token: string, attribution: Attribution): void {
    this.attributions.push({ type: 'attribution', token, attribution });
  }

  note(at: number, text: string): void {
    this.push(at, 0, { type: 'note', text });
  }

  /** One flow with its byte counters and end, as the extension would have reported it. */
  connection(c: Connection): void {
    const family = c.remote.address.includes(':') ? 'ipv6' : 'ipv4';
    const protocol = c.protocol ?? 'tcp';
    const local = c.local ?? { address: family === 'ipv6' ? this.localV6 : this.localV4, port: this.ephemeralPort() };
    const flow: Record<string, unknown> = {
      id: c.id,
      direction: c.direction ?? 'outbound',
      protocol,
      family,
      local,
      remote: c.remote,
    };
    if (c.host) flow.remoteHost = { name: c.host, source: c.hostSource ?? 'extension' };
    if (c.ownerError) flow.ownerError = c.ownerError;
    else {
      flow.token = c.proc.token;
      if (c.proc.app) flow.appToken = c.proc.app.token;
      flow.pid = c.proc.pid;
      flow.uid = c.proc.uid;
    }
    if (c.pending) flow.pending = c.pending;
    if (c.verdict) flow.verdict = c.verdict;
    this.push(c.at, 1, { type: 'flow', at: c.at, flow });
    if (c.verdict?.action === 'block') return; // ends at once when replayed
    // Everything ends inside one pass, so a looped replay never has two passes of one flow open.
    const last = this.header.lengthMs - 1;
    const end = c.durationMs === undefined ? last : Math.min(c.at + c.durationMs, last);
    const rxRate = c.rxRate ?? 0;
    const txRate = c.txRate ?? 0;
    const tick = c.tickMs ?? 1000;
    // A pending flow moves no data until decided; counters start after its deadline at the latest.
    const firstTick = c.at + (c.pending ? c.pending.deadlineMs : 0) + tick;
    if (rxRate > 0 || txRate > 0) {
      let rx = 0;
      let tx = 0;
      for (let t = firstTick; t < end; t += tick) {
        // Traffic comes in bursts: a rate varies by ±60 % from one tick to the next.
        rx += Math.round((rxRate * tick) / 1000 * (0.4 + 1.2 * this.random()));
        tx += Math.round((txRate * tick) / 1000 * (0.4 + 1.2 * this.random()));
        // Extensions report counters of all flows on one timer: ticks land on a shared 250 ms grid.
        const at = Math.ceil(t / COUNTER_GRID_MS) * COUNTER_GRID_MS;
        if (at < end) this.counter(at, c.id, rx, tx);
      }
      if (c.durationMs !== undefined && end < last) this.counter(end, c.id, rx + Math.round(rxRate / 10), tx + Math.round(txRate / 20));
    }
    if (c.durationMs !== undefined && end < last) this.push(end, 3, { type: 'end', at: end, id: c.id, ...(c.endReason ? { reason: c.endReason } : {}) });
  }

  toNdjson(): string {
    for (const [at, byId] of this.bytesAt) this.push(at, 2, { type: 'bytes', at, counters: [...byId.values()] });
    this.bytesAt.clear();
    const { name, description, host, lengthMs, defaultAction, timeoutMs, attributionNote } = this.header;
    const head = {
      type: 'scenario',
      name,
      description,
      lengthMs,
      hello: {
        extension: { name: 'flowtop-demo', version: '1' },
        platform: 'demo',
        host,
        capabilities: CAPABILITIES,
        tokenKind: 'replay',
        mode: { failOpen: false, attribution: attributionNote, defaultAction, timeoutMs },
      },
    };
    const events = [...this.events].sort((a, b) => a.at - b.at || a.order - b.order || a.seq - b.seq);
    return [head, ...this.attributions, ...events.map((e) => e.line)].map((line) => JSON.stringify(line)).join('\n') + '\n';
  }

  private counter(at: number, id: string, rx: number, tx: number): void {
    const byId = this.bytesAt.get(at) ?? new Map<string, { id: string; rx: number; tx: number }>();
    byId.set(id, { id, rx, tx });
    this.bytesAt.set(at, byId);
  }

  private push(at: number, order: number, line: unknown): void {
    this.events.push({ at, order, seq: this.seq++, line });
  }

  private ephemeralPort(): number {
    const port = this.nextPort;
    this.nextPort = this.nextPort >= 65_000 ? 49_152 : this.nextPort + 1 + Math.floor(this.random() * 3);
    return port;
  }
}

/** A small deterministic generator (mulberry32), so regenerating gives the same files. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
