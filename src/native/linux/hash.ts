// Hashes an executable through an already open fd (so the bytes are those of the file the process
// maps, whatever its path now names). Results are cached by dev:inode:size:mtime:ctime: any write to
// the file changes mtime/ctime, so a cached hash is never stale, and a large binary is read once.
import { createHash } from 'node:crypto';
import { readSync, type BigIntStats } from 'node:fs';

export interface FileDigest {
  sha256: string;
  /** Only computed when asked for (dpkg records MD5 checksums). */
  md5?: string;
}

export function fileKey(st: BigIntStats): string {
  return formatFileKey(st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs);
}

/** The cache key's one spelling: the agent's queue threads compare keys they read from a raw struct
 *  stat with the ones attributions carry. */
export function formatFileKey(dev: bigint, ino: bigint, size: bigint, mtimeNs: bigint, ctimeNs: bigint): string {
  return `${dev}:${ino}:${size}:${mtimeNs}:${ctimeNs}`;
}

const CHUNK = 1 << 20;

export class FileHasher {
  private readonly cache = new Map<string, FileDigest>();
  private buffer: Buffer | undefined;
  hashed = 0;

  constructor(private readonly capacity = 4096) {}

  /** Digest of the file open at fd whose fstat is st; reads the file only on a cache miss. */
  digest(fd: number, st: BigIntStats, withMd5: boolean): FileDigest {
    const key = fileKey(st);
    const known = this.cache.get(key);
    if (known && (!withMd5 || known.md5 !== undefined)) return known;
    const sha = createHash('sha256');
    const md5 = withMd5 ? createHash('md5') : undefined;
    this.buffer ??= Buffer.allocUnsafe(CHUNK);
    let position = 0;
    for (;;) {
      const n = readSync(fd, this.buffer, 0, CHUNK, position);
      if (n <= 0) break;
      const chunk = this.buffer.subarray(0, n);
      sha.update(chunk);
      md5?.update(chunk);
      position += n;
    }
    this.hashed++;
    const result: FileDigest = { sha256: sha.digest('hex'), ...(md5 ? { md5: md5.digest('hex') } : {}) };
    if (this.cache.size >= this.capacity) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, result);
    return result;
  }

  clear(): void {
    this.cache.clear();
  }
}
