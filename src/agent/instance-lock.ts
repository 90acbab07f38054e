// One agent per network namespace and per socket path. A second `flowtop agent` used to remove the
// first one's BPF programs and status file before failing on NFQUEUE (EPERM) without saying why. Each
// agent now takes flock(2) locks, named after its network namespace and its socket path, in a
// directory only root can write; the kernel drops them when the agent dies, so a crashed agent's
// leftovers are still cleaned by the next. The locks are taken before anything else is touched.
//
// Agents in different network namespaces may run side by side (their chains and queues are separate)
// if their sockets differ; they may even share a recorder cgroup: a program another live process
// holds is never removed as stale (see bpf.ts).
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { claimLockFile } from '../native/linux/lock-file.js';
import { unsafeDirectoryReason } from './safe-directory.js';
import { expectErrno } from '../errno.js';

export const LOCK_DIRECTORY = '/run/flowtop/agents';

export interface AgentInstance {
  pid: number;
  socket: string;
  started: number;
  /** The inode of the network namespace it runs in (/proc/self/ns/net). */
  netns: number;
}

export interface InstanceLocks {
  release(): void;
}

/** Thrown when another agent holds a lock: names it. */
export class AgentRunningError extends Error {
  constructor(readonly holder: AgentInstance | undefined, what: string) {
    super(holder
      ? `another flowtop agent is running ${what}: pid ${holder.pid}, socket ${holder.socket}, since ${new Date(holder.started).toISOString()}. Nothing of it was touched; stop it first (\`flowtop agent --status --socket ${holder.socket}\` shows it)`
      : `another flowtop agent is running ${what} (it did not say which). Nothing of it was touched; stop it first`);
  }
}

/** The agent a lock file names; undefined for a half-written or foreign one. */
function asInstance(heldBy: unknown): AgentInstance | undefined {
  if (typeof heldBy !== 'object' || heldBy === null) return undefined;
  const v = heldBy as Partial<AgentInstance>;
  if (!Number.isInteger(v.pid) || typeof v.socket !== 'string' || !Number.isFinite(v.started) || !Number.isInteger(v.netns)) return undefined;
  return { pid: v.pid!, socket: v.socket, started: v.started!, netns: v.netns! };
}

/** The socket path with its directory resolved: two spellings of one path are one lock. */
function canonicalSocket(socket: string): string {
  try {
    return join(realpathSync(dirname(socket)), basename(socket));
  } catch (error) {
    expectErrno(error, ['ENOENT', 'ENOTDIR', 'EACCES']); // no such folder (yet): the path as given
    return socket;
  }
}

/** Takes both locks or throws (AgentRunningError when another agent holds one). */
export function claimAgentInstance(socket: string, directory = LOCK_DIRECTORY): InstanceLocks {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const unsafe = unsafeDirectoryReason(directory);
  if (unsafe) throw new Error(`refusing the lock directory ${directory}: ${unsafe}`);
  const netns = statSync('/proc/self/ns/net').ino;
  const canonical = canonicalSocket(socket);
  const me: AgentInstance = { pid: process.pid, socket: canonical, started: Date.now(), netns };
  const wanted: Array<[string, string]> = [
    [`net-${netns}.lock`, 'in this network namespace'],
    [`socket-${createHash('sha256').update(canonical).digest('hex').slice(0, 24)}.lock`, `on ${canonical}`],
  ];
  const held: number[] = [];
  const releaseAll = (): void => {
    for (const fd of held.splice(0)) closeSync(fd);
  };
  try {
    for (const [name, what] of wanted) {
      const claim = claimLockFile(join(directory, name), me);
      if ('heldBy' in claim) throw new AgentRunningError(asInstance(claim.heldBy), what);
      held.push(claim.fd);
    }
  } catch (error) {
    releaseAll();
    throw error;
  }
  return { release: releaseAll };
}
