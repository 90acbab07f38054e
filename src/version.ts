// flowtop's version, written once: in package.json. Read from the nearest package.json named flowtop
// above this module, which finds it from src/ (tests), dist/ (an install) and a build elsewhere in the
// checkout (node_modules/.cache/…).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectErrno } from './errno.js';

const PACKAGE_NAME = 'flowtop';
/** src/version.ts sits one folder below package.json; a build in node_modules/.cache/<dir>/ three. */
const LEVELS = 4;

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < LEVELS; level++) {
    dir = dirname(dir);
    let pkg: unknown;
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch (error) {
      // none here, unreadable, or not JSON: look one folder up
      if (!(error instanceof SyntaxError)) expectErrno(error, ['ENOENT', 'EACCES', 'ENOTDIR']);
      continue;
    }
    const fields = typeof pkg === 'object' && pkg !== null ? (pkg as Record<string, unknown>) : {};
    const version = fields['version'];
    // A version goes on the wire as string(255) (docs/protocol.md, "Limits").
    if (fields['name'] === PACKAGE_NAME && typeof version === 'string' && version.length > 0 && version.length <= 255) return version;
  }
  return 'unknown';
}

export const VERSION: string = packageVersion();
