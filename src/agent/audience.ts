// Who hears what the agent sees: the subscribed clients of its socket and its observers, told the same
// events in the same order (observers.ts).
import type { ExtensionMessage } from '../protocol/messages.js';
import type { AgentServer } from './io.js';
import { isAgentEvent, type AgentEvent, type EndedFlow, type ObserverList } from './observers.js';

export class Audience {
  /** The socket server, once it listens. */
  server?: AgentServer;

  constructor(private readonly observers: ObserverList) {}

  private get subscribed(): boolean {
    return this.server?.clients.some((c) => c.subscribed) ?? false;
  }

  /** Whether anyone hears about flows: a subscribed client or an observer. */
  get watched(): boolean {
    return this.observers.size > 0 || this.subscribed;
  }

  /** Whether a flow that ended before it was published can be told whole (tellEnded): no client is
   *  subscribed (it would want the events) and every observer takes such flows. */
  get endedWhole(): boolean {
    return this.observers.takeEnded && !this.subscribed;
  }

  tellEnded(flow: EndedFlow): void {
    this.observers.ended(flow);
  }

  /** `now` for what a person waits on (a pending flow); the rest leaves at the end of this event-loop
   *  turn, in one write per client. */
  tell(event: AgentEvent, when: 'now' | 'soon' = 'soon'): void {
    if (when === 'now') this.server?.broadcast(event);
    else this.server?.broadcastSoon(event);
    this.observers.notify(event);
  }

  /** Any message for every subscribed client (at the end of this turn); observers hear the events. */
  broadcast(msg: ExtensionMessage): void {
    if (isAgentEvent(msg)) this.tell(msg);
    else this.server?.broadcastSoon(msg);
  }
}
