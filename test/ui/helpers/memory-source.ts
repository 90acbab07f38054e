// An in-process flow source for frame tests: the test pushes protocol messages, and every message the
// app sends is recorded. The wire itself is covered by the socket tests (test/app).
import { BehaviorSubject, Subject } from 'rxjs';
import type { ClientMessage, ExtensionMessage } from '../../../src/protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from '../../../src/source/types.js';

export interface MemorySource extends FlowSource {
  push(message: ExtensionMessage): void;
  setStatus(status: ConnectionStatus): void;
  readonly sent: ClientMessage[];
}

export function memorySource(id = 'mem'): MemorySource {
  const events = new Subject<SourceEvent>();
  const status = new BehaviorSubject<ConnectionStatus>({ state: 'connecting', attempt: 0 });
  const sent: ClientMessage[] = [];
  return {
    id,
    events$: events.asObservable(),
    status$: status.asObservable(),
    sent,
    push: (message) => events.next({ source: id, message }),
    setStatus: (s) => status.next(s),
    send(message): SendResult {
      sent.push(message);
      return { ok: true };
    },
    close() {
      events.complete();
      status.complete();
    },
  };
}
