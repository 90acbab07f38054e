// Token layouts (docs/protocol.md, "Tokens"). Clients treat tokens as opaque keys; only the native
// layer that resolves them, and the extension that makes them, read the fields.

/** Linux token: names one process instance. 24 bytes, little-endian:
 *  0..3 pid (u32), 4..7 exec tag (u32: FNV-1a of the running executable's "dev:inode", so a token taken
 *  before an exec of another program differs from one taken after; 0 when the maker could not read
 *  /proc/PID/exe), 8..15 start time in clock ticks since boot (u64, /proc/PID/stat field 22),
 *  16..23 pidfs inode of the process's pidfd (u64, 0 where the kernel has no pidfs). */
export const LINUX_TOKEN_BYTES = 24;

export interface LinuxToken {
  pid: number;
  startTime: bigint;
  pidfsInode: bigint;
  /** 0 or absent: unknown (exec not detectable for this token). */
  execTag?: number;
}

export function encodeLinuxToken(token: LinuxToken): Buffer {
  const out = Buffer.alloc(LINUX_TOKEN_BYTES);
  out.writeUInt32LE(token.pid, 0);
  out.writeUInt32LE((token.execTag ?? 0) >>> 0, 4);
  out.writeBigUInt64LE(token.startTime, 8);
  out.writeBigUInt64LE(token.pidfsInode, 16);
  return out;
}

export function decodeLinuxToken(bytes: Uint8Array): LinuxToken | undefined {
  if (bytes.length !== LINUX_TOKEN_BYTES) return undefined;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pid = b.readUInt32LE(0);
  if (pid === 0) return undefined;
  return { pid, startTime: b.readBigUInt64LE(8), pidfsInode: b.readBigUInt64LE(16), execTag: b.readUInt32LE(4) };
}

/** macOS audit_token_t: 32 bytes, eight native-endian (little-endian on every Mac) uint32 values. */
export const AUDIT_TOKEN_BYTES = 32;

export interface AuditToken {
  auid: number;
  euid: number;
  egid: number;
  ruid: number;
  rgid: number;
  pid: number;
  asid: number;
  pidversion: number;
}

const AUDIT_FIELDS = ['auid', 'euid', 'egid', 'ruid', 'rgid', 'pid', 'asid', 'pidversion'] as const;

export function encodeAuditToken(token: AuditToken): Buffer {
  const out = Buffer.alloc(AUDIT_TOKEN_BYTES);
  AUDIT_FIELDS.forEach((field, i) => out.writeUInt32LE(token[field] >>> 0, i * 4));
  return out;
}

export function decodeAuditToken(bytes: Uint8Array): AuditToken | undefined {
  if (bytes.length !== AUDIT_TOKEN_BYTES) return undefined;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = AUDIT_FIELDS.map((_, i) => b.readUInt32LE(i * 4));
  const [auid, euid, egid, ruid, rgid, pid, asid, pidversion] = values as [
    number, number, number, number, number, number, number, number,
  ];
  return { auid, euid, egid, ruid, rgid, pid, asid, pidversion };
}
