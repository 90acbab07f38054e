// Who owns a queued packet: exact sock_diag lookup of its tuple → socket cookie → the BPF record made
// when the process connected → a pidfd-confirmed token. Falls back to an inode scan for sockets the
// recorder never saw (no BPF, or connected before the agent started).
import type { RecorderView, OwnerRecord } from '../native/linux/bpf.js';
import type { SockDiag, SocketInfo } from '../native/linux/sock-diag.js';
import type { InodeIndex } from './inode-index.js';
import type { TokenCache } from './token-cache.js';
import type { PacketTuple } from './packet.js';

export interface Owner {
  token?: Buffer;
  /** The token in base64, as flows and rules carry it (made once per cached process). */
  tokenText?: string;
  pid?: number;
  uid?: number;
  /** Why there is no token. */
  error?: string;
  /** Inode number of the executable the connect record saw (0n when it read none). */
  exeIno?: bigint;
  /** Device (st_dev) of the executable the connect record saw (0n when it read none). */
  exeDev?: bigint;
  /** Kernel address of the executable's open file in the record (0n when it read none). */
  exeFile?: bigint;
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

/** The token of the process that made the record, confirmed to be that very instance: by the pidfs
 *  inode the record carries, or — without one — by opening a pidfd and requiring a start time not after
 *  the recorded time (a recycled PID started later and is refused). Fills `out`: this runs for every
 *  queued packet. */
function confirmRecord(out: Owner, tokens: TokenCache, record: OwnerRecord): Owner {
  const pid = record.tgid;
  out.pid = pid;
  out.exeIno = record.exeIno;
  out.exeDev = record.exeDev;
  out.exeFile = record.exeFile;
  const live = tokens.getInstance(record);
  if (live === 'gone') out.error = `process ${pid} exited before its connection was judged`;
  else if (live === 'reused') out.error = `PID ${pid} now names a newer process than the one that connected`;
  else {
    out.token = live.token;
    out.tokenText = live.tokenText;
  }
  return out;
}

/** The token of `pid` found by an inode scan (no record to confirm against): it holds the socket, but
 *  nothing says it ran the program that connected, so the token names no program. */
function confirmScanned(out: Owner, tokens: TokenCache, pid: number): Owner {
  out.pid = pid;
  const live = tokens.getHolder(pid);
  if (!live) out.error = `process ${pid} exited before its connection was judged`;
  else {
    out.token = live.token;
    out.tokenText = live.tokenText;
  }
  return out;
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
  const out: Owner = {};
  const uid = kernelUid ?? info?.uid;
  if (uid !== undefined) out.uid = uid;
  let record: OwnerRecord | undefined;
  let via: Owner['via'] = 'bpf';
  if (deps.recorder) {
    if (info) record = deps.recorder.lookupCookie(info.cookie);
    if (!record && packet.protocol === 'udp') {
      // the sender may have exited and its socket with it: the sendmsg hook also keyed the datagram's tuple
      record = deps.recorder.lookupUdpTuple(ends.remote.address, ends.remote.port, ends.local.port);
      via = 'bpf-udp-tuple';
    }
  }
  if (record) {
    out.via = via;
    return confirmRecord(out, deps.tokens, record);
  }
  if (!info) {
    out.error = lookupError ?? 'the socket was closed before its packet was judged';
    return out;
  }
  const pid = deps.inodes.find(info.inode, info.uid);
  if (pid === undefined) {
    out.error = `no process holds socket inode ${info.inode}`;
    return out;
  }
  out.via = 'inode-scan';
  return confirmScanned(out, deps.tokens, pid);
}
