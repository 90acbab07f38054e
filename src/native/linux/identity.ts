// What the executable is: whether its path still leads to the running file, and who vouches for its
// bytes (a dpkg package whose recorded checksum matches, or nobody).
import { statSync, type BigIntStats } from 'node:fs';
import type { Signer } from '../../attribution/types.js';
import { DELETED, stripDeleted } from './procfs.js';
import type { FileDigest } from './hash.js';
import type { PackageOwner } from './packages.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';

/** Where the running file is now, and whether its path still leads to it. The path is looked up
 *  through /proc/PID/root, i.e. in the process's own mount namespace and root. */
export function exeState(pid: number, link: string, mapped: BigIntStats): { path: string; exeChanged?: 'deleted' | 'replaced' } {
  const deleted = link.endsWith(DELETED);
  const path = stripDeleted(link);
  let current: BigIntStats | undefined;
  try {
    current = statSync(`/proc/${pid}/root${path}`, { bigint: true });
  } catch (error) {
    expectErrno(error, [...GONE_OR_DENIED, 'ENOTDIR']); // the path leads nowhere now (or the process left)
    current = undefined;
  }
  if (current && (current.dev !== mapped.dev || current.ino !== mapped.ino)) return { path, exeChanged: 'replaced' };
  if (deleted) return { path, exeChanged: current ? 'replaced' : 'deleted' };
  return { path };
}

export function signerOf(owner: PackageOwner | undefined, digest: FileDigest, exeChanged: 'deleted' | 'replaced' | undefined, path: string): Signer {
  if (path.startsWith('/memfd:')) return { kind: 'unpackaged', label: 'unpackaged (runs from an in-memory file, memfd: nothing on disk)' };
  if (!owner) return { kind: 'unpackaged', label: 'unpackaged' };
  if (owner.md5 === undefined) {
    return { kind: 'unpackaged', label: `unpackaged (package ${owner.package} lists the path but records no checksum for it)`, package: owner.package };
  }
  if (digest.md5 === owner.md5) return { kind: 'package', label: `package ${owner.package}`, package: owner.package };
  if (exeChanged) {
    // Typically a daemon still running the previous version after an upgrade: its file is gone, so no
    // package vouches for these bytes any more; that is not evidence of tampering.
    return { kind: 'unpackaged', label: `unpackaged (${exeChanged} on disk since it started; package ${owner.package} no longer vouches for it)`, package: owner.package };
  }
  return { kind: 'modified', label: `modified (differs from package ${owner.package})`, package: owner.package };
}
