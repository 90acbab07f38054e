// What `flowtop agent` is started with (its flags, the rule book, the attribution backend, observers);
// what it reads from and does to the system comes separately, as its AgentIo (io.ts).
import type { AttributionBackend } from '../attribution/types.js';
import type { Action, BlockMode } from '../protocol/messages.js';
import type { AgentObserver } from './observers.js';
import type { FleetLinkStatus } from '../fleet/link-types.js';
import type { HistoryStatus } from '../history/status.js';
import type { RuleBook } from './rule-book.js';

export interface AgentOptions {
  socketPath: string;
  queueNum: number;
  /** Queue threads, one NFQUEUE each from queueNum up (default 1). */
  workers?: number;
  defaultAction: Action;
  timeoutMs: number;
  failOpen: boolean;
  blockMode: BlockMode;
  inbound: boolean;
  rules: RuleBook;
  /** Resolves tokens to identities for identity-keyed rules and `remember always`. */
  attribution?: AttributionBackend;
  /** A UDP flow ends after this long with no activity seen (default 30 s). */
  udpIdleMs?: number;
  /** How often byte counters and ends are polled (default 1 s). */
  trafficIntervalMs?: number;
  log?: (line: string) => void;
  /** The agent can no longer judge packets (its queue loop died). */
  onFatal?: (message: string) => void;
  /** Told every event the subscribed clients are sent (see observers.ts). While there is one, the
   *  agent publishes every flow as if a client were subscribed: none goes into the unwatched batches. */
  observers?: readonly AgentObserver[];
  /** Where the agent records its history (an absolute path), or 'off': said in hello.mode.history so
   *  clients read the file the agent writes. Absent: not said. */
  history?: string;
  /** This agent's own process token (base64, see protocol/tokens.ts): its own outbound connections
   *  (to the fleet's NATS servers) are let through by the queue threads when their owner is verified
   *  to be this very process instance, instead of being held and judged like a stranger's. */
  selfToken?: string;
  /** Establish the code identity of every flow published (--nats: a remote client cannot verify
   *  this machine's tokens), not only where rules or the policy need it. */
  establishIdentities?: boolean;
  /** The host name the hello gives (--host-name with --nats); the machine's name otherwise. */
  hostName?: string;
  /** What the history recording is doing, for the status file (`--status`). */
  historyStatus?: () => HistoryStatus;
  /** The fleet link's state for the status file (`--status`), when the agent runs with --nats. */
  fleetStatus?: () => FleetLinkStatus & { host: string; servers: string[] };
}
