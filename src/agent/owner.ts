// Who owns a queued packet: exact sock_diag lookup of its tuple → socket cookie → the BPF record made
// when the process connected → a pidfd-confirmed token. Falls back to an inode scan for sockets the
// recorder never saw (no BPF, or connected before the agent started).
import type { RecorderView, OwnerRecord } from '../native/linux/bpf.js';
import type { SockDiag, SocketInfo } from '../native/linux/sock-diag.js';
import type { InodeIndex } from './inode-index.js';
import type { TokenCache } from './token-cache.js';
import type { PacketTuple } from './packet.js';

/** Kernel USER_HZ: /proc/PID/stat start times are in 1/100 s on every Linux architecture we run on. */
const NS_PER_TICK = 10_000_000n;

export interface Owner {
  token?: Buffer;
  /** The token in base64, as flows and rules carry it (made once per cached process). */
  tokenText?: string;
  pid?: number;
  uid?: number;
  /** Why there is no token. */
  error?: string;
  /** How the owner was found: the connect-time record, or a scan of /proc. */
  via?: 'bpf' | 'bpf-udp-tuple' | 'inode-scan';
}

export interface OwnerDeps {
  diag: SockDiag;
  recorder?: RecorderView;
  inodes: InodeIndex;
  tokens: TokenCache;
}

export interface LocalRemote {
  local: { address: Buffer; port: number };
  remote: { address: Buffer; port: number };
}

/** Confirms that `pid` is the process that made the record: opened first (pidfd), then its start time
 *  must not be after the recorded time — a recycled PID started later and is refused. */
function confirm(tokens: TokenCache, pid: number, record: OwnerRecord | undefined): { token?: Buffer; tokenText?: string; error?: string } {
  const live = tokens.get(pid);
  if (!live) return { error: `process ${pid} exited before its connection was judged` };
  if (record && live.startTime * NS_PER_TICK > record.bootNs) {
    return { error: `PID ${pid} now names a newer process than the one that connected` };
  }
  return { token: live.token, tokenText: live.tokenText };
}

export function findOwner(deps: OwnerDeps, packet: PacketTuple, ends: LocalRemote, kernelUid: number | undefined): Owner {
  if (packet.protocol !== 'tcp' && packet.protocol !== 'udp') {
    return { ...(kernelUid !== undefined ? { uid: kernelUid } : {}), error: `no socket lookup for ${packet.protocol}` };
  }
  let info: SocketInfo | undefined;
  let lookupError: string | undefined;
  try {
    // An inbound SYN has no socket yet: its owner is the listener on the local port.
    const inbound = ends.local.address === packet.dst && ends.local.port === packet.dstPort;
    info = deps.diag.lookup({ protocol: packet.protocol, local: ends.local, remote: ends.remote }, { listener: inbound });
  } catch (error) {
    lookupError = (error as Error).message;
  }
  const uid = kernelUid ?? info?.uid;
  const withUid = uid !== undefined ? { uid } : {};
  let record: OwnerRecord | undefined;
  let via: Owner['via'];
  if (deps.recorder) {
    if (info) {
      record = deps.recorder.lookupCookie(info.cookie);
      via = 'bpf';
    }
    if (!record && packet.protocol === 'udp') {
      // the sender may have exited and its socket with it: the sendmsg hook also keyed the datagram's tuple
      record = deps.recorder.lookupUdpTuple(ends.remote.address, ends.remote.port, ends.local.port);
      via = 'bpf-udp-tuple';
    }
  }
  if (record) {
    const pid = record.tgid;
    const confirmed = confirm(deps.tokens, pid, record);
    return { ...withUid, pid, ...confirmed, via: via! };
  }
  if (!info) {
    return { ...withUid, error: lookupError ?? 'the socket was closed before its packet was judged' };
  }
  const pid = deps.inodes.find(info.inode, info.uid);
  if (pid === undefined) return { ...withUid, error: `no process holds socket inode ${info.inode}` };
  return { ...withUid, pid, ...confirm(deps.tokens, pid, undefined), via: 'inode-scan' };
}
