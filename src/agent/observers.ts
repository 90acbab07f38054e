// The agent's one seam for whatever records or forwards what it sees (a history store, a fleet
// publisher): every event it sends its subscribed clients, it also hands to its observers, in the same
// order, on the main thread. Observers sit beside the clients, never on the verdict path: a packet
// has already been answered (or is waiting on its deadline) when its event is observed.
import type { BytesMessage, EndMessage, ExtensionMessage, FlowMessage, FlowRecord, RuleChangedMessage, Verdict, VerdictMessage } from '../protocol/messages.js';

/** What the agent tells its clients as it happens, in protocol v1's shapes (docs/protocol.md):
 *  - `flow`: a flow seen — pending (`flow.pending`) or already decided (`flow.verdict`); a later
 *    `flow` with the same id updates it (its verified identity, a blocked conversation's packet count);
 *  - `verdict`: a pending flow decided (by a client, a rule, a policy switch or the deadline), or a
 *    live flow ended by a client's block;
 *  - `bytes`: cumulative counters of live flows; `end`: a live flow ended, with why;
 *  - `rule-changed`: a rule added, removed (by a request, used up, expired) or its hit count moved. */
export type AgentEvent = FlowMessage | VerdictMessage | BytesMessage | EndMessage | RuleChangedMessage;

/** A flow a rule allowed whose socket had already closed when its batch reached the main thread:
 *  what its `flow`, last `bytes` and `end` events would have said, in one call. It has no id (nothing
 *  refers to it later) and no local end. */
export type EndedFlow = Omit<FlowRecord, 'id' | 'local' | 'pending' | 'packets' | 'appToken'> & { verdict: Verdict; end: number; rx: number; tx: number };

export interface AgentObserver {
  /** Called synchronously on the agent's main thread. Must return quickly (queue the work, do it
   *  later) and must not change the event: its objects are the agent's own, and may change after the
   *  call (a pending flow gains its identity) — copy what you keep. A throw is logged and counted. */
  observe(event: AgentEvent): void;
  /** Optional: such flows are then told whole, not as three events, while no client is subscribed
   *  and every observer has this (most connections a busy machine makes are over before the main
   *  thread sees them, and their events would be built for nobody else). The object is reused for
   *  the next call: copy what you keep. */
  ended?(flow: EndedFlow): void;
}

const EVENT_TYPES: ReadonlySet<string> = new Set(['flow', 'verdict', 'bytes', 'end', 'rule-changed']);

export function isAgentEvent(msg: ExtensionMessage): msg is AgentEvent {
  return EVENT_TYPES.has(msg.type);
}

/** The observers, each called in turn; one that throws does not keep the event from the others. */
export class ObserverList {
  /** Throws swallowed so far, by observer (the first of each is logged). */
  readonly failures: number[];

  constructor(private readonly observers: readonly AgentObserver[], private readonly log: (line: string) => void) {
    this.failures = observers.map(() => 0);
  }

  get size(): number {
    return this.observers.length;
  }

  /** Whether every observer (at least one) takes ended flows whole. */
  get takeEnded(): boolean {
    return this.observers.length > 0 && this.observers.every((o) => o.ended !== undefined);
  }

  notify(event: AgentEvent): void {
    for (let i = 0; i < this.observers.length; i++) {
      try {
        this.observers[i]!.observe(event);
      } catch (error) {
        this.failed(i, event.type, error);
      }
    }
  }

  /** An ended flow, to observers that take them whole (see AgentObserver.ended). */
  ended(flow: EndedFlow): void {
    for (let i = 0; i < this.observers.length; i++) {
      try {
        this.observers[i]!.ended?.(flow);
      } catch (error) {
        this.failed(i, 'ended flow', error);
      }
    }
  }

  private failed(i: number, what: string, error: unknown): void {
    if (this.failures[i]!++ === 0) {
      this.log(`observer ${i + 1} failed on a "${what}" event (further failures are only counted): ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
