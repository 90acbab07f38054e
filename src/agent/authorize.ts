// Who may talk to the agent: root and members of the `flowtop` group. The socket file is 0660
// root:flowtop, so others cannot even connect; the SO_PEERCRED check below is the second lock, for a
// socket whose mode someone loosened or a --socket path in a shared directory. It reads only what the
// kernel recorded when the peer connected (SO_PEERCRED, SO_PEERGROUPS), never /proc/<pid>: a PID can
// be reused by another process (a group member's) while the connection lives on in a child.
import { spawnSync } from 'node:child_process';
import type { ServerClient } from '../protocol/server.js';

export const AGENT_GROUP = 'flowtop';

/** The flowtop group's gid, created (as a system group) when missing. */
export function ensureGroup(name = AGENT_GROUP): { gid: number; created: boolean } {
  const found = groupId(name);
  if (found !== undefined) return { gid: found, created: false };
  const r = spawnSync('groupadd', ['--system', name], { encoding: 'utf8' });
  const gid = groupId(name);
  if (gid === undefined) throw new Error(`cannot create group ${name}: ${(r.stderr || String(r.error ?? '')).trim()}`);
  return { gid, created: true };
}

function groupId(name: string): number | undefined {
  const r = spawnSync('getent', ['group', name], { encoding: 'utf8' });
  const gid = Number(r.stdout?.split(':')[2]);
  return r.status === 0 && Number.isInteger(gid) ? gid : undefined;
}

/** true for root and group members; otherwise the reason given to the client. */
export function authorizeClient(client: ServerClient, gid: number): true | string {
  const peer = client.peer;
  if (!peer) return 'the agent cannot tell who you are (no SO_PEERCRED): refused';
  if (peer.uid === 0 || peer.gid === gid || peer.groups?.includes(gid)) return true;
  if (!peer.groups) return `uid ${peer.uid} is not root and its primary group is not "${AGENT_GROUP}", and this kernel does not report supplementary groups (SO_PEERGROUPS, Linux 4.13+): refused`;
  return `uid ${peer.uid} is not root and not in group "${AGENT_GROUP}": only they may watch flows, send verdicts and change rules (sudo usermod -aG ${AGENT_GROUP} USER)`;
}
