// The shape every flow source has: a socket client, the in-process passive monitor, the demo.
import type { Observable } from 'rxjs';
import type { ClientMessage, ExtensionMessage, HelloMessage } from '../protocol/messages.js';

export type ConnectionStatus =
  | { state: 'connecting'; attempt: number }
  /** `hello` is absent for a link that is not an extension (a fleet's NATS server). */
  | { state: 'connected'; hello?: HelloMessage }
  | { state: 'reconnecting'; reason: string; retryAt: number; attempt: number }
  | { state: 'disconnected'; reason: string }
  | { state: 'version-mismatch'; theirs: number; ours: number };

/** One protocol message, tagged with the source it came from. */
export interface SourceEvent {
  source: string;
  message: ExtensionMessage;
  /** Made by the client, not sent by the extension: an `error` describing a malformed line received. */
  local?: true;
  /** The answer to a request this client sent (a fleet host's reply): someone waits for it. */
  reply?: true;
}

export interface SendResult {
  ok: boolean;
  /** Why it could not be sent, in words for the status line. */
  error?: string;
}

export interface FlowSource {
  /** Short label used to tag flows, e.g. the socket path or "monitor". */
  readonly id: string;
  /** Part of a fleet (src/fleet): its NATS server (`server`: the link, the fleet rules) or one of its
   *  hosts (`host`: flows of another machine, whose tokens this client cannot verify). */
  readonly fleet?: { readonly role: 'server' | 'host'; readonly label: string };
  readonly events$: Observable<SourceEvent>;
  readonly status$: Observable<ConnectionStatus>;
  send(message: ClientMessage): SendResult;
  close(): void;
}
