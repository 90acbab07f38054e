// uid → user name from /etc/passwd (a local file; NSS sources such as LDAP are not consulted).
// The file is re-read when its mtime changes, checked at most once a second.
import { readFileSync, statSync } from 'node:fs';
import { expectErrno } from '../../errno.js';

const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}\$?$/;

/** Parses passwd(5) text; lines that are malformed are skipped. First entry for a uid wins. */
export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    if (fields.length < 7) continue;
    const [name, , uidText] = fields;
    if (name === undefined || uidText === undefined || !NAME.test(name) || !/^\d{1,10}$/.test(uidText)) continue;
    const uid = Number(uidText);
    if (uid > 0xffffffff || names.has(uid)) continue;
    names.set(uid, name);
  }
  return names;
}

export class UserNames {
  private names = new Map<number, string>();
  private mtimeMs = -1;
  private checkedAt = -Infinity;

  constructor(private readonly path = '/etc/passwd', private readonly now: () => number = Date.now) {}

  name(uid: number): string | undefined {
    this.refresh();
    return this.names.get(uid);
  }

  private refresh(): void {
    const now = this.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    try {
      const mtimeMs = statSync(this.path).mtimeMs;
      if (mtimeMs === this.mtimeMs) return;
      this.names = parsePasswd(readFileSync(this.path, 'utf8'));
      this.mtimeMs = mtimeMs;
    } catch (error) {
      expectErrno(error, ['ENOENT', 'EACCES']); // no passwd file we may read: numbers only
      this.names = new Map();
      this.mtimeMs = -1;
    }
  }
}
