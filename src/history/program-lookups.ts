// Which program each recorded flow belongs to: looked up once per process token through the
// attribution backend (in batches, one lookup at a time), with the agent's own identity for a flow
// taking precedence. A flow written before its lookup answered waits here for the answer, which then
// completes its row and lets its traffic be counted under its program.
import type { Attribution } from '../attribution/types.js';
import { identityKey } from '../rules/model.js';
import type { ProcessFacts } from './batch.js';
import { FLAG, type OpenFlows } from './open-flow.js';
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
  private readonly awaiting = new Map<string, { since: number; slots: number[] }>();
  private awaitingCount = 0;
  /** The facts of flows the agent identified itself, by identity and lookup (factsOf). */
  private readonly agentFacts = new Map<string, ProcessFacts>();
  private resolving = false;
  /** A start is scheduled for the next turn. */
  private soon = false;

  /** `settled`: a waiting flow's lookup answered (`facts`: its program, when that changed what its
   *  row says) or was given up on. */
  constructor(
    private readonly flows: OpenFlows,
    private readonly resolve: Resolve | undefined,
    private readonly now: () => number,
    private readonly settled: (slot: number, facts: ProcessFacts | undefined) => void,
  ) {}

  /** A new flow: its token's lookup is asked for unless known, on the next turn of the event loop
   *  (with the other tokens of this turn): a short-lived program is gone within milliseconds, and
   *  waiting for the recorder's next batch (up to 250 ms) left most of them unidentified. */
  want(token: string | undefined): void {
    if (token === undefined || !this.resolve || this.facts.has(token) || this.toResolve.has(token)) return;
    this.toResolve.add(token);
    if (!this.soon && !this.resolving) {
      this.soon = true;
      setImmediate(() => {
        this.soon = false;
        this.start();
      });
    }
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
        this.start(); // tokens that came meanwhile
      });
  }

  /** The flow's program: from the lookup of its token (undefined while under way, unless waited long
   *  enough), with the agent's own identity for it taking precedence. */
  factsOf(slot: number, now: number): ProcessFacts | undefined {
    const f = this.flows;
    const token = f.token[slot];
    let looked: ProcessFacts | null | undefined;
    if (token !== undefined && this.resolve) {
      looked = this.facts.get(token);
      if (looked === undefined && now - f.seen[slot]! < RESOLVE_WAIT_MS) return undefined;
    }
    const base: ProcessFacts = looked ?? UNKNOWN_FACTS;
    const agent = f.agentIdentity[slot];
    if (!agent) return base;
    const key = identityKey({ kind: agent.kind, value: agent.value, ...(agent.package !== undefined ? { package: agent.package } : {}) });
    if (key === undefined) return base;
    const path = agent.path ?? base.path;
    // One object per program and lookup, so batches refer to it by number (the recorder's flush).
    const cacheKey = `${key}\0${path ?? ''}\0${agent.package ?? ''}\0${looked ? token ?? '' : ''}`;
    const cached = this.agentFacts.get(cacheKey);
    if (cached) return cached;
    const facts: ProcessFacts = {
      ...base, key, trust: TRUST_CODES.indexOf('secure'),
      ...(path !== undefined ? { path } : {}),
      ...(agent.package !== undefined ? { package: agent.package } : {}),
      ...(base.name === undefined && path !== undefined ? { name: path.slice(path.lastIndexOf('/') + 1) } : {}),
    };
    if (this.agentFacts.size >= MAX_CACHED_TOKENS) this.agentFacts.clear();
    this.agentFacts.set(cacheKey, facts);
    return facts;
  }

  /** Its lookup has not answered yet. */
  pending(slot: number): boolean {
    const token = this.flows.token[slot];
    return token !== undefined && this.resolve !== undefined && !this.facts.has(token);
  }

  /** Keeps a flow written before its program's lookup answered, for the answer; false when too many
   *  already wait (it is then counted as it is). */
  await(slot: number): boolean {
    const token = this.flows.token[slot];
    if (this.awaitingCount >= MAX_AWAITING || token === undefined) return false;
    const waiting = this.awaiting.get(token);
    if (waiting) waiting.slots.push(slot);
    else this.awaiting.set(token, { since: this.flows.seen[slot]!, slots: [slot] });
    this.flows.set(slot, FLAG.awaited);
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
    this.awaitingCount -= waiting.slots.length;
    const now = this.now();
    const flows = this.flows;
    for (const slot of waiting.slots) {
      flows.clear(slot, FLAG.awaited);
      let changed: ProcessFacts | undefined;
      if (answered) {
        const f = this.factsOf(slot, now);
        const had = flows.facts[slot];
        if (f && (f.key !== had?.key || f.trust !== had?.trust || f.parent !== had?.parent)) {
          flows.setFacts(slot, f);
          changed = f;
        }
      }
      flows.set(slot, FLAG.settled);
      this.settled(slot, changed);
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
