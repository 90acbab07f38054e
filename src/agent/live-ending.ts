// `block` on an allowed, live flow ends it: a TCP flow's socket is destroyed (the program sees
// ECONNABORTED at once); a UDP socket may serve other peers, so it is left alone and the flow's
// connection-tracking entry is deleted instead, which sends its next datagram back to the queue, where
// the remembered block drops it (until the remembered decision expires, or a rule that allows the
// flow applies first).
import type { FlowRecord, Verdict } from '../protocol/messages.js';
import type { AgentIo } from './io.js';
import { flowKey } from './packet.js';
import type { RecentVerdicts } from './recent-verdicts.js';
import { liveEndReason, type DestroyOutcome } from './socket-destroy.js';
import { addressBytes } from '../native/linux/sock-diag.js';

export interface Ending {
  verdict: Verdict;
  /** Why the flow ended, in words (the `end` message's reason). */
  reason: string;
}

/** Destroys the flow's own socket when it is TCP or UDP (other protocols have none: undefined). */
export function destroyFlowSocket(io: Pick<AgentIo, 'destroySocket'>, flow: FlowRecord): DestroyOutcome | undefined {
  if (flow.protocol !== 'tcp' && flow.protocol !== 'udp') return undefined;
  return io.destroySocket({ protocol: flow.protocol, local: flow.local, remote: flow.remote });
}

/** Ends a live TCP or UDP flow (the caller checked the protocol), remembering a UDP flow's block. */
export function endLiveFlow(io: Pick<AgentIo, 'destroySocket' | 'forgetUdpFlow'>, recent: RecentVerdicts, flow: FlowRecord, now: number): Ending {
  if (flow.protocol === 'tcp') {
    const verdict: Verdict = { action: 'block', by: 'user', blockMode: 'reject' };
    return { verdict, reason: liveEndReason(destroyFlowSocket(io, flow) ?? { result: 'gone' }) };
  }
  const verdict: Verdict = { action: 'block', by: 'user', blockMode: 'drop' };
  const [src, dst] = flow.direction === 'inbound' ? [flow.remote, flow.local] : [flow.local, flow.remote];
  recent.remember(flowKey({ protocol: 'udp', src: addressBytes(src.address), srcPort: src.port, dst: addressBytes(dst.address), dstPort: dst.port }), verdict, now);
  try {
    const reason = io.forgetUdpFlow(src, dst)
      ? 'blocked while live: its next datagrams are dropped'
      : 'blocked while live: it had no tracked connection left; its next datagrams are dropped';
    return { verdict, reason };
  } catch (error) {
    return { verdict, reason: `blocked while live, but its connection tracking entry could not be removed (${(error as Error).message}): datagrams may pass until it expires` };
  }
}
