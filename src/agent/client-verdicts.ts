// A client's `verdict` message: it decides a pending flow (once, or remembered as a rule), or, as
// `block` on an allowed live flow, ends that flow. A remembered verdict's rule is made while the flow
// is still held or its socket still open, so the program's identity can still be verified.
import type { AttributionBackend } from '../attribution/types.js';
import type { BlockMode, ClientVerdictMessage, FlowRecord, RuleIdentity, RuleSpec, Verdict } from '../protocol/messages.js';
import type { ServerClient } from '../protocol/server.js';
import { decodeLinuxToken } from '../protocol/tokens.js';
import { identityFromKey } from '../rules/model.js';
import { UserNames } from '../native/linux/users.js';
import { rememberedRule, subjectOf } from '../rules/remember.js';
import type { Ending } from './live-ending.js';
import type { LiveFlows } from './live-flows.js';
import type { PendingFlow, PendingTable } from './pending.js';
import type { RuleConversation } from './rule-requests.js';
import type { AgentEvent } from './observers.js';

export interface ClientVerdictDeps {
  pending: Pick<PendingTable, 'get'>;
  /** The live flows, once the agent has started. */
  live(): Pick<LiveFlows, 'get' | 'end'> | undefined;
  /** Answers a pending flow's packets, once (a second call for the same flow does nothing). */
  decide(p: PendingFlow, verdict: Verdict): void;
  /** Ends a live TCP or UDP flow (live-ending.ts). */
  endLive(flow: FlowRecord): Ending;
  tell(event: AgentEvent, when: 'now' | 'soon'): void;
  rules: Pick<RuleConversation, 'add'>;
  /** Resolves a token's identity for `remember always`. */
  attribution?: AttributionBackend;
  /** --block-mode: for a block that names no mode. */
  blockMode: BlockMode;
  now(): number;
  log(line: string): void;
}

export class ClientVerdicts {
  constructor(private readonly deps: ClientVerdictDeps) {}

  handle(client: ServerClient, msg: ClientVerdictMessage): void {
    const d = this.deps;
    const p = d.pending.get(msg.id);
    if (!p) {
      const live = d.live()?.get(msg.id);
      if (live && msg.action === 'block') return this.endLiveFlow(client, live.flow, msg);
      if (live) return void client.reply('not-pending', `flow "${msg.id}" is already allowed`, msg.ref);
      client.reply('unknown-flow', `no pending or live flow "${msg.id}" (already decided and ended, or never seen)`, msg.ref);
      return;
    }
    const blockMode = msg.blockMode ?? d.blockMode;
    const decider = deciderOf(client);
    const verdict: Verdict = { action: msg.action, by: 'user', ...(msg.action === 'block' ? { blockMode } : {}), ...(decider ? { decider } : {}) };
    if (msg.remember === 'once') return d.decide(p, verdict);
    this.decideAndRemember(client, p, verdict, msg, blockMode).catch((error: unknown) => {
      d.log(`remembering a verdict failed: ${messageOf(error)}`);
      client.reply('internal', `the verdict could not be remembered: ${messageOf(error)}`, msg.ref);
    });
  }

  /** The rule is made while the flow is still held: its program cannot have exited yet (its connect
   *  is waiting on us), so its identity can still be verified. Deciding first would let a blocked
   *  program exit before its identity is read, and "always" could never be remembered. */
  private async decideAndRemember(client: ServerClient, p: PendingFlow, verdict: Verdict, msg: ClientVerdictMessage, blockMode: BlockMode): Promise<void> {
    const spec = await this.ruleSpecFor(p.flow, msg, blockMode);
    // The deadline or another client may have decided the flow meanwhile; a verdict is given once.
    if (this.deps.pending.get(msg.id) === p) this.deps.decide(p, verdict);
    if (typeof spec === 'string') return void client.reply('not-supported', spec, msg.ref);
    await this.deps.rules.add(client, spec, msg.ref);
  }

  /** `block` on an allowed, live flow ends it (live-ending.ts). */
  private endLiveFlow(client: ServerClient, flow: FlowRecord, msg: ClientVerdictMessage): void {
    const d = this.deps;
    if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') {
      return void client.reply('not-supported', `only TCP and UDP flows can be ended; "${flow.id}" is ${flow.protocol}`, msg.ref);
    }
    const end = (): void => {
      const { verdict, reason } = d.endLive(flow);
      const decider = deciderOf(client);
      d.tell({ type: 'verdict', id: flow.id, time: d.now(), verdict: decider ? { ...verdict, decider } : verdict }, 'now');
      d.live()?.end(flow.id, reason);
    };
    if (msg.remember === 'once') return end();
    // As for a held flow: read the identity before the socket is destroyed and the program exits.
    this.ruleSpecFor(flow, msg, msg.blockMode ?? d.blockMode).then(async (spec) => {
      end();
      if (typeof spec === 'string') return void client.reply('not-supported', spec, msg.ref);
      await d.rules.add(client, spec, msg.ref);
    }).catch((error: unknown) => {
      d.log(`ending a live flow failed: ${messageOf(error)}`);
      client.reply('internal', `the flow could not be ended: ${messageOf(error)}`, msg.ref);
    });
  }

  /** The rule a remembered verdict makes, or why none can be made (in words). */
  private async ruleSpecFor(flow: FlowRecord, msg: ClientVerdictMessage, blockMode: BlockMode): Promise<RuleSpec | string> {
    const remember = msg.remember === 'process' ? 'process' : 'always';
    // A token with exec tag 0 names the process but not the program that connected (owner found by a
    // /proc scan): a rule for "this process" would also let through whatever it execs next.
    if (remember === 'process' && flow.token && decodeLinuxToken(Buffer.from(flow.token, 'base64'))?.execTag === 0) {
      return 'cannot remember "process": the agent could not tell which program made this connection (its owner was found by a /proc scan), so a rule for the process would also cover any program it runs next';
    }
    let identity: RuleIdentity | undefined;
    let why = '';
    if (remember === 'always') {
      const attribution = flow.token && this.deps.attribution ? (await this.deps.attribution.resolve([Buffer.from(flow.token, 'base64')]))[0] : undefined;
      identity = attribution?.trust === 'secure' && attribution.identity ? identityFromKey(attribution.identity, attribution.name) : undefined;
      if (attribution?.reason) why = ` (${attribution.reason.message})`;
    }
    const spec = rememberedRule(
      { action: msg.action, remember, scope: msg.scope ?? 'process', forMs: msg.forMs, session: msg.session, blockMode },
      subjectOf(flow, identity),
      this.deps.now(),
    );
    return typeof spec === 'string' ? `cannot remember "${msg.remember}": ${spec}${why}` : spec;
  }
}

let userNames: UserNames | undefined;

/** Who decided: what the client says it decides as (a NATS request), else the socket peer's user as
 *  the kernel reported its uid (SO_PEERCRED), named from /etc/passwd. */
function deciderOf(client: ServerClient): string | undefined {
  if (client.decider) return client.decider;
  const uid = client.peer?.uid;
  if (uid === undefined) return undefined;
  userNames ??= new UserNames();
  return `local:${userNames.name(uid) ?? `uid ${uid}`}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
