// Which program each recorded flow belongs to: looked up once per process token through the
// attribution backend (in batches, one lookup at a time), with the agent's own identity for a flow
// taking precedence. A flow written before its lookup answered waits here for the answer, which then
// completes its row and lets its traffic be counted under its program.
import type { Attribution } from '../attribution/types.js';
import { identityKey } from '../rules/model.js';
import type { ProcessFacts } from './batch.js';
import { FLAG, type OpenFlow } from './open-flow.js';
import { TRUST_CODES } from './schema.js';

/** A row waits this long for its program's lookup, then is written without it and completed when the
 *  answer comes (a first lookup can take seconds: the executable hashed, the package database read);
 *  short, so a killed agent loses at most about a second of flows. */
const RESOLVE_WAIT_MS = 500;
/** Flows written before their lookup answered, by token, for the answer to complete them and to
 *  count their traffic under their program; past this, later ones are counted under "no owner". */
const MAX_AWAITING = 50_000;
/** A lookup that has not answered by then is given up on: its flows' traffic is counted without an
 *  owner (their rows stay as written). */
const BUCKET_WAIT_MS = 30_000;
const MAX_CACHED_TOKENS = 20_000;
const MAX_RESOLVE_BATCH = 512;
const UNKNOWN_FACTS: ProcessFacts = Object.freeze({ trust: TRUST_CODES.indexOf('unknown') });

export type Resolve = (tokens: Uint8Array[]) => Promise<Attribution[]>;

export class ProgramLookups {
  private readonly facts = new Map<string, ProcessFacts | null>();
  private readonly toResolve = new Set<string>();
  private readonly awaiting = new Map<string, { since: number; flows: OpenFlow[] }>();
  private awaitingCount = 0;
  /** The facts of flows the agent identified itself, by identity and lookup (factsOf). */
  private readonly agentFacts = new Map<string, ProcessFacts>();
  private resolving = false;

  /** `settled`: a waiting flow's lookup answered (`facts`: its program, when that changed what its
   *  row says) or was given up on. */
  constructor(
    private readonly resolve: Resolve | undefined,
    private readonly now: () => number,
    private readonly settled: (o: OpenFlow, facts: ProcessFacts | undefined) => void,
  ) {}

  /** A new flow: its token's lookup is asked for unless known. */
  want(token: string | undefined): void {
    if (token !== undefined && this.resolve && !this.facts.has(token)) this.toResolve.add(token);
  }

  /** Starts the next lookup batch unless one is under way. */
  start(): void {
    if (this.resolving || this.toResolve.size === 0 || !this.resolve) return;
    const tokens = [...this.toResolve].slice(0, MAX_RESOLVE_BATCH);
    for (const t of tokens) this.toResolve.delete(t);
    this.resolving = true;
    this.resolve(tokens.map((t) => Buffer.from(t, 'base64')))
      .then((results) => tokens.forEach((t, i) => this.remember(t, results[i] ? factsFromAttribution(results[i]!) : null)))
      .catch(() => tokens.forEach((t) => this.remember(t, null)))
      .finally(() => {
        this.resolving = false;
      });
  }

  /** The flow's program: from the lookup of its token (undefined while under way, unless waited long
   *  enough), with the agent's own identity for it taking precedence. */
  factsOf(o: OpenFlow, now: number): ProcessFacts | undefined {
    let looked: ProcessFacts | null | undefined;
    if (o.token !== undefined && this.resolve) {
      looked = this.facts.get(o.token);
      if (looked === undefined && now - o.seen < RESOLVE_WAIT_MS) return undefined;
    }
    const base: ProcessFacts = looked ?? UNKNOWN_FACTS;
    if (!o.agentIdentity) return base;
    const key = identityKey({ kind: o.agentIdentity.kind, value: o.agentIdentity.value, ...(o.agentIdentity.package !== undefined ? { package: o.agentIdentity.package } : {}) });
    if (key === undefined) return base;
    const path = o.agentIdentity.path ?? base.path;
    // One object per program and lookup, so batches refer to it by number (the recorder's flush).
    const cacheKey = `${key}\0${path ?? ''}\0${o.agentIdentity.package ?? ''}\0${looked ? o.token ?? '' : ''}`;
    const cached = this.agentFacts.get(cacheKey);
    if (cached) return cached;
    const facts: ProcessFacts = {
      ...base, key, trust: TRUST_CODES.indexOf('secure'),
      ...(path !== undefined ? { path } : {}),
      ...(o.agentIdentity.package !== undefined ? { package: o.agentIdentity.package } : {}),
      ...(base.name === undefined && path !== undefined ? { name: path.slice(path.lastIndexOf('/') + 1) } : {}),
    };
    if (this.agentFacts.size >= MAX_CACHED_TOKENS) this.agentFacts.clear();
    this.agentFacts.set(cacheKey, facts);
    return facts;
  }

  /** Its lookup has not answered yet. */
  pending(o: OpenFlow): boolean {
    return o.token !== undefined && this.resolve !== undefined && !this.facts.has(o.token);
  }

  /** Keeps a flow written before its program's lookup answered, for the answer; false when too many
   *  already wait (it is then counted as it is). */
  await(o: OpenFlow): boolean {
    if (this.awaitingCount >= MAX_AWAITING || o.token === undefined) return false;
    const waiting = this.awaiting.get(o.token);
    if (waiting) waiting.flows.push(o);
    else this.awaiting.set(o.token, { since: o.seen, flows: [o] });
    this.awaitingCount++;
    return true;
  }

  /** Lookups that have not answered in BUCKET_WAIT_MS: their flows are counted as they are. */
  giveUp(now: number): void {
    for (const [token, waiting] of this.awaiting) {
      if (now - waiting.since < BUCKET_WAIT_MS) break; // in the order they began waiting
      this.settle(token, false);
    }
  }

  /** Every waiting flow is counted as it is (closing). */
  giveUpAll(): void {
    for (const token of [...this.awaiting.keys()]) this.settle(token, false);
  }

  /** The answer for a token: the rows written without it are completed, and their traffic (held
   *  back meanwhile) is counted under the program in the next batch. */
  private remember(token: string, facts: ProcessFacts | null): void {
    this.facts.set(token, facts);
    this.settle(token, true);
    if (this.facts.size > MAX_CACHED_TOKENS) {
      let n = MAX_CACHED_TOKENS / 10;
      for (const key of this.facts.keys()) {
        if (n-- <= 0) break;
        this.facts.delete(key);
      }
    }
  }

  private settle(token: string, answered: boolean): void {
    const waiting = this.awaiting.get(token);
    if (!waiting) return;
    this.awaiting.delete(token);
    this.awaitingCount -= waiting.flows.length;
    const now = this.now();
    for (const o of waiting.flows) {
      let changed: ProcessFacts | undefined;
      if (answered) {
        const f = this.factsOf(o, now);
        if (f && (f.key !== o.facts?.key || f.trust !== o.facts?.trust || f.parent !== o.facts?.parent)) {
          o.setFacts(f);
          changed = f;
        }
      }
      o.set(FLAG.settled);
      this.settled(o, changed);
    }
  }
}

export function factsFromAttribution(a: Attribution): ProcessFacts {
  const trust = TRUST_CODES.indexOf(a.trust === 'pending' ? 'unknown' : a.trust);
  const key = a.trust === 'secure' && a.identity ? a.identity : a.path ? `path:${a.path}` : a.name ? `name:${a.name}` : undefined;
  const parent = a.parents?.[0];
  return {
    trust,
    ...(key !== undefined ? { key } : {}),
    ...(a.name !== undefined ? { name: a.name } : {}),
    ...(a.path !== undefined ? { path: a.path } : {}),
    ...(a.sha256 !== undefined ? { sha256: a.sha256 } : {}),
    ...(a.signer?.package !== undefined ? { package: a.signer.package } : {}),
    ...(parent ? { parent: parent.path ?? parent.name } : {}),
  };
}
