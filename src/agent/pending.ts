// Flows waiting for a verdict, each with its own deadline. Packets of the same 5-tuple that arrive
// while a flow waits (retransmitted SYNs, further UDP datagrams) join it, so one decision answers all
// of them, and each packet id is answered exactly once.
import type { FlowRecord, Verdict } from '../protocol/messages.js';
import { systemClock, type Clock } from './io.js';

export interface PendingFlow {
  key: string;
  flow: FlowRecord;
  packetIds: number[];
  deadline: number;
  /** Cancels the deadline's timer. */
  cancel?: () => void;
  /** What the deadline applies when a policy switch already knows better than the default action
   *  (e.g. block-unpackaged while the identity is still being verified). */
  fallback?: Verdict;
}

export class PendingTable {
  private readonly byId = new Map<string, PendingFlow>();
  private readonly byKey = new Map<string, PendingFlow>();

  constructor(private readonly onExpire: (p: PendingFlow) => void, private readonly clock: Pick<Clock, 'now' | 'after'> = systemClock) {}

  get size(): number {
    return this.byId.size;
  }

  /** Adds a held packet: a new pending flow (returned) or undefined when it joined an existing one. */
  add(key: string, flow: FlowRecord, packetId: number, timeoutMs: number, now = this.clock.now()): PendingFlow | undefined {
    const existing = this.byKey.get(key);
    if (existing) {
      existing.packetIds.push(packetId);
      return undefined;
    }
    const deadline = now + timeoutMs;
    const p: PendingFlow = { key, flow: { ...flow, pending: { deadline } }, packetIds: [packetId], deadline };
    p.cancel = this.clock.after(Math.max(0, deadline - now), () => {
      if (this.byId.get(p.flow.id) === p) this.onExpire(p);
    });
    this.byId.set(flow.id, p);
    this.byKey.set(key, p);
    return p;
  }

  get(id: string): PendingFlow | undefined {
    return this.byId.get(id);
  }

  /** Removes and returns the flow: whoever takes it owns its packets' verdict. */
  take(id: string): PendingFlow | undefined {
    const p = this.byId.get(id);
    if (!p) return undefined;
    this.byId.delete(id);
    this.byKey.delete(p.key);
    p.cancel?.();
    return p;
  }

  all(): PendingFlow[] {
    return [...this.byId.values()];
  }
}
