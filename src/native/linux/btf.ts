// A reader for the kernel's own type description (/sys/kernel/btf/vmlinux), just enough to find where a
// field sits inside a kernel struct. The recorder program reads a few task_struct fields with
// bpf_probe_read_kernel; their offsets differ between kernel builds, so they are looked up here at
// start instead of being compiled in. Format: Documentation/bpf/btf.rst (header, type section, strings).
import { readFileSync } from 'node:fs';
import { expectErrno } from '../../errno.js';

const MAGIC = 0xeb9f;
const KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10,
  RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18,
  ENUM64: 19,
} as const;

interface Member {
  name: string;
  type: number;
  /** Offset in bits from the start of the enclosing struct. */
  bitOffset: number;
  bitfield: boolean;
}

interface TypeInfo {
  kind: number;
  name: string;
  /** size in bytes (struct, union, int, enum) or the referenced type id (ptr, typedef, qualifiers). */
  sizeOrType: number;
  members?: Member[];
}

export interface FieldLocation {
  /** Byte offset of the field inside the struct. */
  offset: number;
  /** Size in bytes of the field's type (after typedefs and qualifiers). */
  size: number;
  /** The field's type kind: 'int', 'ptr', 'struct'… */
  kind: string;
}

export class BtfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BtfError';
  }
}

const KIND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(KIND).map(([k, v]) => [v, k.toLowerCase()]));

/** The parsed type section of one BTF blob. Only struct/union members are kept in detail. */
export class Btf {
  private readonly types: TypeInfo[] = [{ kind: 0, name: '', sizeOrType: 0 }];
  private readonly structsByName = new Map<string, number>();

  constructor(blob: Buffer) {
    if (blob.length < 24 || blob.readUInt16LE(0) !== MAGIC) throw new BtfError('not a BTF blob (bad magic)');
    const hdrLen = blob.readUInt32LE(4);
    const typeOff = blob.readUInt32LE(8);
    const typeLen = blob.readUInt32LE(12);
    const strOff = blob.readUInt32LE(16);
    const strLen = blob.readUInt32LE(20);
    const typesStart = hdrLen + typeOff;
    const typesEnd = typesStart + typeLen;
    const strStart = hdrLen + strOff;
    if (typesEnd > blob.length || strStart + strLen > blob.length) throw new BtfError('BTF sections run past the end of the blob');
    const str = (off: number): string => {
      if (off >= strLen) throw new BtfError(`string offset ${off} outside the string section`);
      const at = strStart + off;
      const end = blob.indexOf(0, at);
      return blob.toString('latin1', at, end < 0 || end > strStart + strLen ? strStart + strLen : end);
    };
    let at = typesStart;
    while (at < typesEnd) {
      if (at + 12 > typesEnd) throw new BtfError('truncated type record');
      const name = str(blob.readUInt32LE(at));
      const info = blob.readUInt32LE(at + 4);
      const sizeOrType = blob.readUInt32LE(at + 8);
      const vlen = info & 0xffff;
      const kind = (info >>> 24) & 0x1f;
      const kindFlag = (info >>> 31) === 1;
      at += 12;
      const t: TypeInfo = { kind, name, sizeOrType };
      switch (kind) {
        case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: at += 4; break;
        case KIND.ARRAY: at += 12; break;
        case KIND.STRUCT: case KIND.UNION: {
          const members: Member[] = [];
          for (let i = 0; i < vlen; i++, at += 12) {
            const raw = blob.readUInt32LE(at + 8);
            members.push({
              name: str(blob.readUInt32LE(at)),
              type: blob.readUInt32LE(at + 4),
              bitOffset: kindFlag ? raw & 0xffffff : raw,
              bitfield: kindFlag && (raw >>> 24) !== 0,
            });
          }
          t.members = members;
          break;
        }
        case KIND.ENUM: case KIND.FUNC_PROTO: at += 8 * vlen; break;
        case KIND.DATASEC: case KIND.ENUM64: at += 12 * vlen; break;
        case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST:
        case KIND.RESTRICT: case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: break;
        default: throw new BtfError(`unknown BTF kind ${kind}`);
      }
      const id = this.types.push(t) - 1;
      if (kind === KIND.STRUCT && name && !this.structsByName.has(name)) this.structsByName.set(name, id);
    }
  }

  /** The location of `field` in `struct name`, looking through anonymous struct/union members (which is
   *  how randomised or grouped layouts wrap fields). Undefined when the struct or the field is absent
   *  or the field is a bitfield. */
  field(structName: string, field: string): FieldLocation | undefined {
    const id = this.structsByName.get(structName);
    if (id === undefined) return undefined;
    return this.find(id, field, 0, 0);
  }

  private find(id: number, field: string, baseBits: number, depth: number): FieldLocation | undefined {
    const t = this.types[id];
    if (!t?.members || depth > 8) return undefined;
    for (const m of t.members) {
      if (m.name === field) {
        if (m.bitfield || m.bitOffset % 8 !== 0) return undefined;
        const resolved = this.resolve(m.type);
        if (!resolved) return undefined;
        return { offset: (baseBits + m.bitOffset) / 8, size: this.sizeOf(resolved), kind: KIND_NAMES[this.types[resolved]!.kind] ?? 'unknown' };
      }
    }
    for (const m of t.members) {
      if (m.name !== '') continue;
      const inner = this.resolve(m.type);
      if (inner === undefined) continue;
      const found = this.find(inner, field, baseBits + m.bitOffset, depth + 1);
      if (found) return found;
    }
    return undefined;
  }

  /** Follows typedefs and qualifiers to the underlying type id. */
  private resolve(id: number): number | undefined {
    for (let hops = 0; hops < 32; hops++) {
      const t = this.types[id];
      if (!t) return undefined;
      if (t.kind === KIND.TYPEDEF || t.kind === KIND.VOLATILE || t.kind === KIND.CONST || t.kind === KIND.RESTRICT || t.kind === KIND.TYPE_TAG) id = t.sizeOrType;
      else return id;
    }
    return undefined;
  }

  private sizeOf(id: number): number {
    const t = this.types[id]!;
    if (t.kind === KIND.PTR) return 8;
    if (t.kind === KIND.INT || t.kind === KIND.STRUCT || t.kind === KIND.UNION || t.kind === KIND.ENUM || t.kind === KIND.ENUM64 || t.kind === KIND.FLOAT) return t.sizeOrType;
    return 0;
  }
}

let kernelBtf: Btf | null | undefined;

/** The running kernel's BTF, or null when the kernel was built without it (read once). */
export function loadKernelBtf(path = '/sys/kernel/btf/vmlinux'): Btf | null {
  if (kernelBtf !== undefined && path === '/sys/kernel/btf/vmlinux') return kernelBtf;
  let btf: Btf | null;
  try {
    btf = new Btf(readFileSync(path));
  } catch (error) {
    // no BTF file (a kernel built without it), or one this parser refuses: the task reads stay off
    if (!(error instanceof BtfError)) expectErrno(error, ['ENOENT', 'EACCES']);
    btf = null;
  }
  if (path === '/sys/kernel/btf/vmlinux') kernelBtf = btf;
  return btf;
}
