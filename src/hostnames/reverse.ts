// Optional reverse lookups (PTR through the system resolver) for addresses no DNS answer named.
// Rate-limited and deduplicated: a table of thousands of flows must not turn into a burst of queries,
// and a failed lookup is not repeated for a while. Results go into the HostNameMap with source 'reverse'.
import { promises as dns } from 'node:dns';
import { canonicalAddress } from '../net/address.js';
import type { HostNameMap } from './map.js';
import { errnoCode } from '../errno.js';

export type ReverseResolver = (address: string) => Promise<string[]>;

export interface ReverseLookupOptions {
  /** Most lookups started per second. */
  perSecond?: number;
  /** Most lookups in flight at once. */
  concurrency?: number;
  /** How long a name found by reverse lookup is kept (PTR answers carry no TTL through node:dns). */
  ttlSec?: number;
  /** An address that failed is not tried again for this long. */
  retryAfterMs?: number;
  /** Most addresses waiting; more are dropped (they are asked for again when seen again). */
  maxQueue?: number;
  resolver?: ReverseResolver;
  now?: () => number;
  /** Told of a lookup that failed other than by a DNS answer (a bug, not the network). */
  onUnexpected?: (error: unknown) => void;
}

export class ReverseLookup {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly failedAt = new Map<string, number>();
  private inFlight = 0;
  private windowStart = 0;
  private startedInWindow = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Lookups that failed other than by a DNS error (ENOTFOUND, ETIMEOUT, …): bugs, counted and told. */
  unexpectedFailures = 0;
  private readonly perSecond: number;
  private readonly concurrency: number;
  private readonly ttlSec: number;
  private readonly retryAfterMs: number;
  private readonly maxQueue: number;
  private readonly resolver: ReverseResolver;
  private readonly now: () => number;

  constructor(private readonly map: HostNameMap, options: ReverseLookupOptions = {}) {
    this.perSecond = Math.max(1, options.perSecond ?? 10);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.ttlSec = options.ttlSec ?? 3600;
    this.retryAfterMs = options.retryAfterMs ?? 5 * 60_000;
    this.maxQueue = options.maxQueue ?? 1000;
    this.resolver = options.resolver ?? ((address): Promise<string[]> => dns.reverse(address));
    this.now = options.now ?? Date.now;
    this.onUnexpected = options.onUnexpected;
  }

  private readonly onUnexpected: ((error: unknown) => void) | undefined;

  /** Asks for a name for `address` unless one is known, queued, or recently failed. */
  request(address: string): void {
    if (this.closed) return;
    const key = canonicalAddress(address);
    if (!key || this.queued.has(key) || this.map.lookup(key)) return;
    const failed = this.failedAt.get(key);
    if (failed !== undefined && this.now() - failed < this.retryAfterMs) return;
    if (this.queue.length >= this.maxQueue) return;
    this.queue.push(key);
    this.queued.add(key);
    this.pump();
  }

  /** Lookups waiting or running. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.queue.length = 0;
    this.queued.clear();
  }

  private pump(): void {
    if (this.closed) return;
    while (this.queue.length > 0 && this.inFlight < this.concurrency) {
      const now = this.now();
      if (now - this.windowStart >= 1000) {
        this.windowStart = now;
        this.startedInWindow = 0;
      }
      if (this.startedInWindow >= this.perSecond) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, Math.max(1, this.windowStart + 1000 - now));
          this.timer.unref();
        }
        return;
      }
      const address = this.queue.shift()!;
      this.startedInWindow++;
      this.inFlight++;
      void this.lookupOne(address);
    }
  }

  private async lookupOne(address: string): Promise<void> {
    try {
      const names = await this.resolver(address);
      const name = names.find((n) => typeof n === 'string' && n.length > 0 && n.length <= 253);
      if (this.closed) return;
      if (name) this.map.set(address, sanitize(name), 'reverse', this.ttlSec);
      else this.failedAt.set(address, this.now());
    } catch (error) {
      // a DNS error (no PTR, a timeout) is an answer of sorts; anything else is counted and told
      if (errnoCode(error) === undefined) {
        this.unexpectedFailures++;
        this.onUnexpected?.(error);
      }
      if (!this.closed) this.failedAt.set(address, this.now());
    } finally {
      this.inFlight--;
      this.queued.delete(address);
      if (this.failedAt.size > this.maxQueue * 10) this.failedAt.clear();
      this.pump();
    }
  }
}

/** PTR data is outside input shown in a terminal: lowercase, no trailing dot, and anything outside
 *  printable ASCII replaced. */
function sanitize(name: string): string {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.toLowerCase().replace(/[^\x21-\x7e]/g, '?');
}
