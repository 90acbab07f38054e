// IP address → host name, learnt from DNS answers (or reverse lookups), with TTLs and a size bound.
// A flow's remote address is looked up here when the flow appears: the name is the one the client
// asked for (the head of any CNAME chain), not the CDN name the chain ends at.
import { canonicalAddress, unmapIPv4 } from '../net/address.js';
import type { DnsMessage } from './dns.js';

export type HostNameSource = 'dns' | 'reverse';

export interface HostNameEntry {
  name: string;
  source: HostNameSource;
  /** Milliseconds since the epoch after which the entry is no longer used. */
  expires: number;
}

export interface HostNameMapOptions {
  /** Most addresses kept; the least recently learnt are dropped first. */
  maxEntries?: number;
  /** Answers with a shorter TTL are kept this long anyway: a program connects right after its lookup,
   *  and a TTL of 0 must still name that connection. Seconds. */
  minTtlSec?: number;
  /** Longest time an answer is trusted, whatever its TTL says. Seconds. */
  maxTtlSec?: number;
  now?: () => number;
}

/** Longest CNAME chain followed; real chains are 1–4 long. Also ends loops. */
const MAX_CHAIN = 16;

export class HostNameMap {
  private readonly entries = new Map<string, HostNameEntry>();
  private readonly maxEntries: number;
  private readonly minTtlMs: number;
  private readonly maxTtlMs: number;
  private readonly now: () => number;

  constructor(options: HostNameMapOptions = {}) {
    this.maxEntries = Math.max(1, options.maxEntries ?? 10_000);
    this.minTtlMs = (options.minTtlSec ?? 60) * 1000;
    this.maxTtlMs = (options.maxTtlSec ?? 86_400) * 1000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records one address → name. A DNS name replaces a reverse one; a reverse name never replaces a
   *  live DNS name (the DNS answer is what the program actually asked for). */
  set(address: string, name: string, source: HostNameSource, ttlSec: number): void {
    const key = canonicalAddress(address);
    if (!key || name === '') return;
    const now = this.now();
    const old = this.entries.get(key);
    if (old && source === 'reverse' && old.source === 'dns' && old.expires > now) return;
    const ttlMs = Math.min(this.maxTtlMs, Math.max(this.minTtlMs, ttlSec * 1000));
    this.entries.delete(key); // re-insert: Map order is the eviction order
    this.entries.set(key, { name, source, expires: now + ttlMs });
    if (this.entries.size > this.maxEntries) this.evict();
  }

  /** Learns every address a DNS response names. Returns how many addresses were recorded. */
  addResponse(message: DnsMessage): number {
    if (!message.response || message.rcode !== 0) return 0;
    const cnames = new Map<string, { target: string; ttl: number }>();
    for (const r of message.answers) if (r.type === 'CNAME') cnames.set(r.name, { target: r.target, ttl: r.ttl });
    // Every name reachable from a question through CNAMEs belongs to that question.
    const askedFor = new Map<string, { name: string; ttl: number }>();
    for (const q of message.questions) {
      let current = q.name;
      let ttl = Number.MAX_SAFE_INTEGER;
      for (let step = 0; step <= MAX_CHAIN; step++) {
        if (!askedFor.has(current)) askedFor.set(current, { name: q.name, ttl });
        const next = cnames.get(current);
        if (!next || next.target === q.name) break;
        ttl = Math.min(ttl, next.ttl);
        current = next.target;
      }
    }
    let count = 0;
    for (const r of message.answers) {
      if (r.type === 'CNAME') continue;
      const head = askedFor.get(r.name) ?? { name: this.chainHead(r.name, cnames), ttl: Number.MAX_SAFE_INTEGER };
      this.set(r.address, head.name, 'dns', Math.min(head.ttl, r.ttl));
      count++;
    }
    return count;
  }

  /** The live entry for an address (in any textual form), or undefined. */
  lookup(address: string): HostNameEntry | undefined {
    const key = canonicalAddress(address);
    return key ? this.lookupCanonical(key) : undefined;
  }

  /** The same for an address already in canonical form (as the agent formats a flow's): no parse
   *  per flow on the agent's hot path. */
  lookupCanonical(key: string): HostNameEntry | undefined {
    if (this.entries.size === 0) return undefined;
    const now = this.now();
    const unmapped = unmapIPv4(key);
    return this.fresh(key, now) ?? (unmapped !== undefined ? this.fresh(unmapped, now) : undefined);
  }

  /** The entry for a key unless it has expired (an expired one is dropped). */
  private fresh(key: string, now: number): HostNameEntry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires > now) return entry;
    this.entries.delete(key);
    return undefined;
  }

  /** Drops expired entries. */
  prune(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
  }

  private evict(): void {
    // Insertion order is the eviction order; expired entries are also dropped by lookup() and prune().
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) return;
      this.entries.delete(oldest.value);
    }
  }

  /** When no question names an answer (a message without its question section), the best name is
   *  the start of the CNAME chain that leads to it. */
  private chainHead(name: string, cnames: Map<string, { target: string }>): string {
    const back = new Map<string, string>();
    for (const [from, { target }] of cnames) back.set(target, from);
    let current = name;
    for (let step = 0; step < MAX_CHAIN; step++) {
      const prev = back.get(current);
      if (prev === undefined || prev === name) break;
      current = prev;
    }
    return current;
  }
}
