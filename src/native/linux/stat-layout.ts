// Where fstatat(2) puts each field of struct stat, per architecture, and readers of a struct stat held
// in a Buffer. The agent's hot path stats into reused buffers through libc (no fs.Stats object per
// packet), so the offsets must be this architecture's: x86_64 has its own layout; arm64, riscv64 and
// loongarch64 use the kernel's generic one (include/uapi/asm-generic/stat.h), where st_mode comes
// before a 4-byte st_nlink. glibc's struct stat is the kernel's on all of these.
import { formatFileKey } from './hash.js';

export interface StatLayout {
  /** sizeof(struct stat). */
  size: number;
  /** st_dev and st_ino are 8 bytes each and adjacent (ino = dev + 8): the 16 bytes at `dev` are a file id. */
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  nlinkBytes: 4 | 8;
  fileSize: number;
  /** Seconds and nanoseconds, 8 bytes each. */
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
}

const X86_64: StatLayout = {
  size: 144, dev: 0, ino: 8, nlink: 16, nlinkBytes: 8, mode: 24, fileSize: 48,
  mtimeSec: 88, mtimeNsec: 96, ctimeSec: 104, ctimeNsec: 112,
};

const GENERIC: StatLayout = {
  size: 128, dev: 0, ino: 8, mode: 16, nlink: 20, nlinkBytes: 4, fileSize: 48,
  mtimeSec: 88, mtimeNsec: 96, ctimeSec: 104, ctimeNsec: 112,
};

const LAYOUTS: Readonly<Record<string, StatLayout>> = { x64: X86_64, arm64: GENERIC, riscv64: GENERIC, loong64: GENERIC };

/** The layout for a Node.js `process.arch` name, or undefined where it is not known. */
export function statLayoutFor(arch: string): StatLayout | undefined {
  return Object.hasOwn(LAYOUTS, arch) ? LAYOUTS[arch] : undefined;
}

let current: StatLayout | undefined;

/** This process's layout; throws on an architecture whose layout is not in the table (rather than
 *  reading fields from the wrong bytes). */
export function statLayout(): StatLayout {
  if (current) return current;
  const layout = statLayoutFor(process.arch);
  if (!layout) throw new Error(`the struct stat layout of ${process.arch} is not known: flowtop's Linux layer runs on x64, arm64, riscv64 and loong64`);
  return (current = layout);
}

/** A file id: st_dev (u64 at 0) then st_ino (u64 at 8), as they lie in every layout above — so one
 *  16-byte compare of two struct stats tells whether they are of the same file. */
export const FILE_ID_BYTES = 16;

/** st_dev + st_ino as a file id viewing `st` (valid until the buffer is reused). */
export function fileIdView(st: Buffer, layout: StatLayout = statLayout()): Buffer {
  return st.subarray(layout.dev, layout.dev + FILE_ID_BYTES);
}

/** A new file id for (device, inode), e.g. from a connect record. */
export function makeFileId(dev: bigint, ino: bigint): Buffer {
  const id = Buffer.alloc(FILE_ID_BYTES);
  id.writeBigUInt64LE(dev, 0);
  id.writeBigUInt64LE(ino, 8);
  return id;
}

export function fileIdDev(id: Buffer): bigint {
  return id.readBigUInt64LE(0);
}

export function fileIdIno(id: Buffer): bigint {
  return id.readBigUInt64LE(8);
}

export function statDev(st: Buffer, layout: StatLayout = statLayout()): bigint {
  return st.readBigUInt64LE(layout.dev);
}

export function statIno(st: Buffer, layout: StatLayout = statLayout()): bigint {
  return st.readBigUInt64LE(layout.ino);
}

export function statMode(st: Buffer, layout: StatLayout = statLayout()): number {
  return st.readUInt32LE(layout.mode);
}

export function statLinks(st: Buffer, layout: StatLayout = statLayout()): number {
  return layout.nlinkBytes === 8 ? Number(st.readBigUInt64LE(layout.nlink)) : st.readUInt32LE(layout.nlink);
}

export function statSize(st: Buffer, layout: StatLayout = statLayout()): bigint {
  return st.readBigInt64LE(layout.fileSize);
}

export function statMtimeNs(st: Buffer, layout: StatLayout = statLayout()): bigint {
  return st.readBigInt64LE(layout.mtimeSec) * 1_000_000_000n + st.readBigInt64LE(layout.mtimeNsec);
}

export function statCtimeNs(st: Buffer, layout: StatLayout = statLayout()): bigint {
  return st.readBigInt64LE(layout.ctimeSec) * 1_000_000_000n + st.readBigInt64LE(layout.ctimeNsec);
}

/** True when the struct stat is of the file (device, inode). */
export function isFile(st: Buffer, dev: bigint, ino: bigint, layout: StatLayout = statLayout()): boolean {
  return statDev(st, layout) === dev && statIno(st, layout) === ino;
}

/** dev:inode:size:mtime:ctime (ns), the key the attribution's hash cache uses (formatFileKey). */
export function statFileKey(st: Buffer, layout: StatLayout = statLayout()): string {
  return formatFileKey(statDev(st, layout), statIno(st, layout), statSize(st, layout), statMtimeNs(st, layout), statCtimeNs(st, layout));
}
