// With --nats the agent establishes the code identity of every flow it publishes (docs/fleet.md): a
// client on another machine cannot verify this machine's process tokens, so the agent's own verified
// identity is all it can show. Held flows get theirs while they wait (held-flows.ts, settle); flows a
// rule decided in a queue thread are resolved here, a few at a time off the packet path, and told
// again as a `flow` update carrying `identity` (a later `flow` with the same id updates it).
import type { AttributionBackend } from '../attribution/types.js';
import type { FlowIdentity, FlowRecord } from '../protocol/messages.js';
import { flowIdentityFromKey } from '../rules/model.js';
import type { AgentEvent } from './observers.js';

/** Flows are resolved in batches of at most this many, gathered for at most BATCH_MS. */
const BATCH = 64;
const BATCH_MS = 10;
/** Beyond this many waiting, further flows are published without an identity (counted). */
const MAX_WAITING = 10_000;
/** Identities kept by token: a token names one process instance, so its identity never changes. */
const KNOWN_TOKENS = 4096;

export class PublishedIdentities {
  private waiting: FlowRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Flows published without an identity because too many waited. */
  skipped = 0;
  /** Identities established so far, by token (oldest forgotten first past KNOWN_TOKENS). */
  private readonly known = new Map<string, FlowIdentity>();

  /** Before a decided flow is published: the identity already established for its token, if any, so
   *  the flow leaves with it (no lookup, no second event). */
  fill(flow: FlowRecord): void {
    if (flow.identity || !flow.token) return;
    const known = this.known.get(flow.token);
    if (known) flow.identity = known;
  }

  constructor(private readonly attribution: AttributionBackend, private readonly tell: (event: AgentEvent) => void, private readonly log: (line: string) => void) {}

  /** An identity established elsewhere (a held flow's lookup) for this token. */
  remember(token: string, identity: FlowIdentity): void {
    this.known.set(token, identity);
    if (this.known.size > KNOWN_TOKENS) this.known.delete(this.known.keys().next().value as string);
  }

  /** A decided flow just published without an identity: resolved soon, then told again with it. */
  add(flow: FlowRecord): void {
    if (flow.identity || !flow.token) return;
    // Another flow of the same process is already being looked up: it will be resolved from the
    // backend's own cache, cheaply; the map above spares even that once it is known.
    if (this.waiting.length >= MAX_WAITING) {
      this.skipped++;
      return;
    }
    this.waiting.push(flow);
    if (this.waiting.length >= BATCH) this.run();
    else this.timer ??= setTimeout(() => this.run(), BATCH_MS);
  }

  private run(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const flows = this.waiting.splice(0, BATCH);
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.run(), 0);
    if (flows.length === 0) return;
    // One lookup per process instance in the batch, however many of its flows wait.
    const tokens = [...new Set(flows.map((f) => f.token!))];
    this.attribution.resolve(tokens.map((t) => Buffer.from(t, 'base64'))).then((results) => {
      const byToken = new Map<string, FlowIdentity>();
      results.forEach((a, i) => {
        const identity = a.trust === 'secure' && a.identity ? flowIdentityFromKey(a.identity, a.path) : undefined;
        if (!identity) return;
        byToken.set(tokens[i]!, identity);
        this.remember(tokens[i]!, identity);
      });
      for (const flow of flows) {
        const identity = byToken.get(flow.token!);
        if (!identity || flow.identity) continue;
        flow.identity = identity; // the live flow's own record: later snapshots carry it too
        this.tell({ type: 'flow', flow });
      }
    }, (error: unknown) => this.log(`establishing flow identities failed: ${error instanceof Error ? error.message : String(error)}`));
  }
}
