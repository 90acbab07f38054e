// Flows a queue thread allowed by rule while no client watched, kept for the next client that
// subscribes: batches as the queue threads sent them (decoded only when needed), and the flows a prune
// kept. Only those whose socket still exists are shown then; a prune keeps at most half the bound.
import type { Endpoint, FlowRecord } from '../protocol/messages.js';
import type { DecidedBatch } from './decided-batch.js';
import { decodeDecided } from './decided-records.js';

/** Flows kept at most before a prune (a socket dump) drops the ended ones. */
export const MAX_UNWATCHED = 20_000;

/** Whether a flow's socket still exists (one dump of the sockets); undefined when they cannot be read. */
export type OpenSockets = () => ((protocol: string, local: Endpoint, remote: Endpoint) => boolean) | undefined;

export class UnwatchedFlows {
  private batches: DecidedBatch[] = [];
  private kept: FlowRecord[] = [];
  private count = 0;

  constructor(private readonly openSockets: OpenSockets, private readonly max = MAX_UNWATCHED) {}

  get size(): number {
    return this.count;
  }

  add(batch: DecidedBatch): void {
    this.batches.push(batch);
    this.count += batch.count;
    if (this.count > this.max) this.prune();
  }

  /** The flows kept so far whose socket still exists (all of them when the sockets cannot be read),
   *  oldest first, each with its verdict; the store is emptied. Ended ones are never decoded. */
  take(): FlowRecord[] {
    if (this.count === 0) return [];
    const open = this.openSockets();
    const flows = open ? this.kept.filter((f) => open(f.protocol, f.local, f.remote)) : this.kept;
    // a batch made while someone listened (and posted after the last one left) has blocked flows too
    for (const batch of this.batches) flows.push(...decodeDecided(batch, { only: 'allow', ...(open ? { keep: open } : {}) }));
    this.batches = [];
    this.kept = [];
    this.count = 0;
    return flows;
  }

  /** Keeps the flows whose socket still exists; if that is still too many, the oldest go. */
  private prune(): void {
    this.kept = this.take().slice(-this.max / 2);
    this.count = this.kept.length;
  }
}
