// Turns process tokens into attributions: a token-keyed cache in front of a batching, de-duplicating
// lookup through one platform backend.
//
// Why the cache needs no expiry, and why `gone` is final: a token names one process *instance*
// (Linux: pid + start time + pidfs inode; macOS: the audit token with its pidversion). The kernel never
// hands the same token to another process, so whatever a token resolved to stays true for that token.
// Once the instance has exited (or its PID was taken by another process) it can never come back, so a
// `gone` answer is final and is cached like any other; asking again could only say `gone` again.
// The cache is keyed by the token bytes, never by a PID: a PID names whoever holds it now.
import { Subject, type Observable, type SchedulerLike } from 'rxjs';
import { Batcher } from './batcher.js';
import { LruCache } from './lru.js';
import type { Attribution, AttributionBackend } from './types.js';

export interface AttributorOptions {
  /** How long unknown tokens are collected before one backend call (ms). Default 2. */
  windowMs?: number;
  /** Most tokens per backend call. Default 256. */
  maxBatch?: number;
  /** Most attributions kept (LRU). Default 50,000. */
  cacheSize?: number;
  /** Time source for the batch window (tests pass a TestScheduler). */
  scheduler?: SchedulerLike;
}

export interface AttributionUpdate {
  /** The token as requested (base64). */
  key: string;
  attribution: Attribution;
}

export interface AttributorStats {
  /** Requests answered from the cache. */
  hits: number;
  /** Requests that found nothing cached (including those already in flight). */
  misses: number;
  /** Tokens sent to the backend. */
  lookups: number;
  /** Backend calls made. */
  batches: number;
  /** Tokens waiting for their batch or for the backend's answer. */
  inFlight: number;
  cached: number;
  /** Backend calls that failed as a whole. */
  backendErrors: number;
}

const PENDING: Attribution = Object.freeze({ trust: 'pending' }) as Attribution;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export class Attributor {
  private readonly cache: LruCache<Attribution>;
  private readonly batcher: Batcher;
  /** Token hex → the base64 spellings asked for, while its lookup is queued or running. */
  private readonly inFlight = new Map<string, Set<string>>();
  private readonly updates = new Subject<AttributionUpdate[]>();
  private readonly counters = { hits: 0, misses: 0, lookups: 0, batches: 0, backendErrors: 0 };
  private closed = false;

  /** One array per finished backend call (every token of that batch). */
  readonly updates$: Observable<AttributionUpdate[]> = this.updates.asObservable();

  constructor(private readonly backend: AttributionBackend, options: AttributorOptions = {}) {
    this.cache = new LruCache(options.cacheSize ?? 50_000);
    this.batcher = new Batcher((keys) => void this.lookup(keys), {
      windowMs: options.windowMs ?? 2,
      maxBatch: options.maxBatch ?? 256,
      ...(options.scheduler ? { scheduler: options.scheduler } : {}),
    });
  }

  /** The attribution of a token if known, else `{trust: 'pending'}` (and a lookup is scheduled; its
   *  answer arrives on updates$). A token that is not valid base64 is answered at once, never looked up. */
  request(tokenBase64: string): Attribution {
    const hex = hexOfBase64(tokenBase64);
    if (hex === undefined) return malformed(tokenBase64);
    const known = this.cache.get(hex);
    if (known !== undefined) {
      this.counters.hits++;
      return known;
    }
    this.counters.misses++;
    if (this.closed) return PENDING;
    const spellings = this.inFlight.get(hex);
    if (spellings) {
      spellings.add(tokenBase64);
      return PENDING;
    }
    this.inFlight.set(hex, new Set([tokenBase64]));
    this.batcher.add(hex);
    return PENDING;
  }

  /** The cached attribution, without scheduling anything. */
  peek(tokenBase64: string): Attribution | undefined {
    const hex = hexOfBase64(tokenBase64);
    return hex === undefined ? undefined : this.cache.peek(hex);
  }

  stats(): AttributorStats {
    return { ...this.counters, inFlight: this.inFlight.size, cached: this.cache.size };
  }

  /** Sends every queued token now instead of waiting for the window. */
  flush(): void {
    this.batcher.flush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batcher.cancel();
    this.updates.complete();
    this.backend.close?.();
  }

  private async lookup(hexKeys: string[]): Promise<void> {
    this.counters.batches++;
    this.counters.lookups += hexKeys.length;
    let results: Attribution[] | undefined;
    let failure: string | undefined;
    try {
      results = await this.backend.resolve(hexKeys.map((hex) => Buffer.from(hex, 'hex')));
    } catch (error) {
      this.counters.backendErrors++;
      failure = error instanceof Error ? error.message : String(error);
    }
    const updates: AttributionUpdate[] = [];
    hexKeys.forEach((hex, i) => {
      const answer = results?.[i];
      const attribution = isAttribution(answer) ? answer : backendFailed(failure);
      // A failed call says nothing about the process: not cached, so a later request asks again.
      if (isAttribution(answer) && answer.trust !== 'pending') this.cache.set(hex, answer);
      for (const key of this.inFlight.get(hex) ?? []) updates.push({ key, attribution });
      this.inFlight.delete(hex);
    });
    if (!this.closed && updates.length > 0) this.updates.next(updates);
  }
}

function hexOfBase64(tokenBase64: string): string | undefined {
  if (typeof tokenBase64 !== 'string' || tokenBase64.length === 0 || tokenBase64.length > 1024) return undefined;
  if (tokenBase64.length % 4 !== 0 || !BASE64.test(tokenBase64)) return undefined;
  return Buffer.from(tokenBase64, 'base64').toString('hex');
}

function isAttribution(value: unknown): value is Attribution {
  if (typeof value !== 'object' || value === null) return false;
  const trust = (value as { trust?: unknown }).trust;
  return trust === 'secure' || trust === 'insecure' || trust === 'gone' || trust === 'pending';
}

function malformed(token: string): Attribution {
  return {
    trust: 'insecure',
    reason: { call: 'decode token', message: `the process token ${JSON.stringify(String(token).slice(0, 48))} is not valid base64, so no process can be verified` },
  };
}

function backendFailed(failure: string | undefined): Attribution {
  return {
    trust: 'insecure',
    reason: {
      call: 'resolve',
      message: failure ? `the attribution backend failed: ${failure}` : 'the attribution backend gave no answer for this token',
    },
  };
}
