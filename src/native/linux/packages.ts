// Which dpkg package vouches for a file, and with which checksum. The index (path → package, from
// <dpkg root>/info/*.list) is built lazily on first use and rebuilt when the info directory changes;
// a package's md5sums are parsed once on first need. Nothing here writes anywhere.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expectErrno } from '../../errno.js';

/** What reading the package database fails with when it (or one file of it) is not there. */
const NO_DATABASE = ['ENOENT', 'ENOTDIR'];

export interface PackageOwner {
  package: string;
  /** The path as the package lists it (may differ from the real path under usrmerge). */
  listedPath: string;
  /** The MD5 dpkg recorded for that path, if any. */
  md5?: string;
}

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$/;
const MD5 = /^[0-9a-f]{32}$/;
/** Top-level directories that /usr-merged systems link into /usr. */
const MERGED = /^\/(bin|sbin|lib|lib32|lib64|libx32)\//;
const USR_MERGED = /^\/usr\/(bin|sbin|lib|lib32|lib64|libx32)\//;

/** The spellings of a path a package may have listed: under usrmerge /bin/x and /usr/bin/x are one file. */
export function pathAliases(path: string): string[] {
  if (USR_MERGED.test(path)) return [path, path.slice(4)];
  if (MERGED.test(path)) return [path, `/usr${path}`];
  return [path];
}

export class DpkgIndex {
  private owners: Map<string, string> | undefined;
  private readonly md5s = new Map<string, Map<string, string>>();
  private infoMtimeMs = -1;
  private checkedAt = -Infinity;

  constructor(readonly root = '/var/lib/dpkg', private readonly now: () => number = Date.now) {}

  /** The package that installed path, or undefined when none did (or there is no dpkg database). */
  owner(path: string): PackageOwner | undefined {
    const owners = this.index();
    for (const candidate of pathAliases(path)) {
      const pkg = owners.get(candidate);
      if (pkg === undefined) continue;
      const md5 = this.md5sums(pkg).get(candidate);
      return { package: displayName(pkg), listedPath: candidate, ...(md5 ? { md5 } : {}) };
    }
    return undefined;
  }

  private index(): Map<string, string> {
    const now = this.now();
    if (this.owners && now - this.checkedAt < 2000) return this.owners;
    this.checkedAt = now;
    const info = join(this.root, 'info');
    let mtimeMs: number;
    try {
      mtimeMs = statSync(info).mtimeMs;
    } catch (error) {
      expectErrno(error, NO_DATABASE); // not a dpkg system: no package owns anything
      this.owners = new Map();
      return this.owners;
    }
    if (this.owners && mtimeMs === this.infoMtimeMs) return this.owners;
    const owners = new Map<string, string>();
    let names: string[] = [];
    try {
      names = readdirSync(info);
    } catch (error) {
      expectErrno(error, NO_DATABASE);
    }
    for (const file of names) {
      if (!file.endsWith('.list')) continue;
      const pkg = file.slice(0, -5);
      if (!PACKAGE_NAME.test(pkg)) continue;
      let text: string;
      try {
        text = readFileSync(join(info, file), 'utf8');
      } catch (error) {
        expectErrno(error, NO_DATABASE); // removed by an upgrade since the listing
        continue;
      }
      for (const line of text.split('\n')) if (line.startsWith('/') && !owners.has(line)) owners.set(line, pkg);
    }
    this.owners = owners;
    this.infoMtimeMs = mtimeMs;
    this.md5s.clear();
    return owners;
  }

  private md5sums(pkg: string): Map<string, string> {
    const known = this.md5s.get(pkg);
    if (known) return known;
    const sums = new Map<string, string>();
    try {
      const text = readFileSync(join(this.root, 'info', `${pkg}.md5sums`), 'utf8');
      for (const line of text.split('\n')) {
        // "<32 hex>  <path without leading slash>"
        const sum = line.slice(0, 32);
        const path = line.slice(34);
        if (MD5.test(sum) && line.slice(32, 34) === '  ' && path.length > 0) sums.set(`/${path}`, sum);
      }
    } catch (error) {
      // No md5sums file: the package records no checksums, so it cannot vouch for the bytes.
      expectErrno(error, NO_DATABASE);
    }
    this.md5s.set(pkg, sums);
    return sums;
  }
}

/** "libc6:amd64" → "libc6": the architecture qualifier is not part of the package's name. */
function displayName(pkg: string): string {
  const colon = pkg.indexOf(':');
  return colon < 0 ? pkg : pkg.slice(0, colon);
}
