// What came of destroying a flow's socket (SOCK_DESTROY), and how to say it. A socket that had
// already closed is no failure; the kernel refusing is, and is told as such with its errno: a flow
// reported as "already closed" while its connection carries on would be a lie in the UI.
import { NetlinkError } from '../native/linux/netlink.js';

export type DestroyOutcome =
  | { result: 'destroyed' }
  /** No such socket (ENOENT), or one with that tuple that is another socket (ESTALE). */
  | { result: 'gone' }
  /** The kernel refused: EPERM without CAP_NET_ADMIN, EOPNOTSUPP without CONFIG_INET_DIAG_DESTROY. */
  | { result: 'refused'; errno: string };

/** Runs a destroy (SockDiag.destroy: true destroyed, false no such socket, NetlinkError refused). */
export function destroyOutcome(destroy: () => boolean): DestroyOutcome {
  try {
    return destroy() ? { result: 'destroyed' } : { result: 'gone' };
  } catch (error) {
    if (!(error instanceof NetlinkError)) throw error;
    return { result: 'refused', errno: error.code };
  }
}

const WHY_REFUSED: Readonly<Record<string, string>> = {
  EPERM: 'the agent lacks CAP_NET_ADMIN in this network namespace',
  EOPNOTSUPP: 'this kernel was built without CONFIG_INET_DIAG_DESTROY',
};

/** Why a live TCP flow blocked by a person ended, or did not. */
export function liveEndReason(outcome: DestroyOutcome): string {
  if (outcome.result === 'destroyed') return 'blocked while live: its socket was destroyed';
  if (outcome.result === 'gone') return 'blocked while live: its socket had already closed';
  const why = WHY_REFUSED[outcome.errno];
  return `blocked, but its socket could not be destroyed (${outcome.errno}${why ? `: ${why}` : ''}): the connection stays open until its program closes it`;
}
