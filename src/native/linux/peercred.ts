// Who is on the other end of a Unix socket: SO_PEERCRED, the credentials the kernel recorded when the
// peer called connect(2). Not forgeable by the peer, so the agent can authorise clients by uid.
import type { Socket } from 'node:net';
import type { PeerCredentials } from '../../protocol/server.js';
import { LibcUnavailable, libc, type Libc } from './libc.js';

export type { PeerCredentials };

// <asm-generic/socket.h>: the same on x86_64 and aarch64.
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } */
const UCRED_BYTES = 12;
const SO_PEERGROUPS = 59;
/** NGROUPS_MAX is 65536; a first try with room for 64 covers nearly everyone. */
const FIRST_GROUPS = 64;
const GID_BYTES = 4;

/** libc, or undefined where it cannot be loaded: no credentials rather than a crash. */
function loadableLibc(): Libc | undefined {
  try {
    return libc();
  } catch (error) {
    if (error instanceof LibcUnavailable) return undefined;
    throw error;
  }
}

/** Node keeps the descriptor on a private handle; this cast stays in this one file. */
function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The peer's credentials, or undefined off Linux, on a closed socket, or if the kernel refuses. */
export function peerCredentials(socket: Socket): PeerCredentials | undefined {
  if (process.platform !== 'linux') return undefined;
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  const value = Buffer.alloc(UCRED_BYTES);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(UCRED_BYTES, 0);
  const c = loadableLibc();
  if (!c || c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) return undefined;
  if (length.readUInt32LE(0) < UCRED_BYTES) return undefined;
  const groups = peerGroups(fd);
  return { pid: value.readInt32LE(0), uid: value.readUInt32LE(4), gid: value.readUInt32LE(8), ...(groups ? { groups } : {}) };
}

/** The supplementary groups the kernel recorded with the peer's credentials at connect(2): unlike
 *  /proc/PID/status, they cannot belong to another process that reused the PID. */
function peerGroups(fd: number): number[] | undefined {
  let room = FIRST_GROUPS;
  for (let attempt = 0; attempt < 2; attempt++) {
    const value = Buffer.alloc(room * GID_BYTES);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(value.length, 0);
    const c = loadableLibc();
    if (!c) return undefined;
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, value, length) === 0) {
      const count = Math.floor(length.readUInt32LE(0) / GID_BYTES);
      return Array.from({ length: count }, (_, i) => value.readUInt32LE(i * GID_BYTES));
    }
    // ERANGE: the kernel wrote the size it needs into length.
    const needed = Math.ceil(length.readUInt32LE(0) / GID_BYTES);
    if (needed <= room) return undefined;
    room = needed;
  }
  return undefined;
}
