// Who hears what the agent sees: the subscribed clients of its socket and its observers, told the same
// events in the same order (observers.ts).
import type { ExtensionMessage } from '../protocol/messages.js';
import type { AgentServer } from './io.js';
import { isAgentEvent, type AgentEvent, type ObserverList } from './observers.js';

export class Audience {
  /** The socket server, once it listens. */
  server?: AgentServer;

  constructor(private readonly observers: ObserverList) {}

  /** Whether anyone hears about flows: a subscribed client or an observer. */
  get watched(): boolean {
    return this.observers.size > 0 || (this.server?.clients.some((c) => c.subscribed) ?? false);
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
