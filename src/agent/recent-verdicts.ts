// Decisions the agent gave lately, by 5-tuple key: a retransmitted SYN or the next datagram of a flow
// just decided gets the same answer at once instead of becoming a new pending flow, and a UDP flow
// ended while live has its next datagrams dropped.
import type { Verdict } from '../protocol/messages.js';

/** How long a decision also answers further packets of the same 5-tuple (TCP gives up retrying a
 *  dropped SYN after ~2 minutes). */
export const RECENT_MS = 130_000;
export const RECENT_MAX = 4096;

export class RecentVerdicts {
  private readonly byKey = new Map<string, { verdict: Verdict; until: number }>();

  constructor(private readonly lifetimeMs = RECENT_MS, private readonly max = RECENT_MAX) {}

  get size(): number {
    return this.byKey.size;
  }

  /** The verdict given for this key within its lifetime, if any. */
  get(key: string, now: number): Verdict | undefined {
    const r = this.byKey.get(key);
    return r && r.until > now ? r.verdict : undefined;
  }

  remember(key: string, verdict: Verdict, now: number): void {
    // Entries go in with one fixed lifetime, so the map's insertion order is expiry order: prune from
    // the front and stop at the first one still current (once full, a scan of the whole map on every
    // verdict cost tens of µs).
    this.byKey.delete(key);
    for (const [k, r] of this.byKey) {
      if (r.until > now && this.byKey.size < this.max) break;
      this.byKey.delete(k);
    }
    this.byKey.set(key, { verdict, until: now + this.lifetimeMs });
  }
}
