// Where the shipped scenarios live and how a name or a path becomes a parsed scenario.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { parseScenario, type ParsedScenario } from './scenario.js';

export const DEFAULT_SCENARIO = 'default';

/** demo/scenarios of this installation: two levels up from both src/demo (tests) and dist/demo (built). */
export function scenariosDir(): string {
  return fileURLToPath(new URL('../../demo/scenarios/', import.meta.url));
}

export function listScenarioNames(dir = scenariosDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.endsWith('.ndjson'))
    .map((file) => file.slice(0, -'.ndjson'.length))
    .sort();
}

/** A shipped scenario's name ("default", "linux") or a path to an .ndjson file. */
export function resolveScenarioPath(nameOrPath: string): string {
  const looksLikePath = nameOrPath.includes('/') || nameOrPath.endsWith('.ndjson');
  if (looksLikePath) {
    const path = resolve(nameOrPath);
    if (!existsSync(path)) throw new UserError(`no scenario file at ${path}`, 'check the path, or run `flowtop demo --list` for the shipped scenarios');
    return path;
  }
  const path = join(scenariosDir(), `${nameOrPath}.ndjson`);
  if (!/^[A-Za-z0-9._-]+$/.test(nameOrPath) || !existsSync(path)) {
    const names = listScenarioNames();
    throw new UserError(
      `no scenario named "${nameOrPath}"`,
      names.length > 0 ? `shipped scenarios: ${names.join(', ')} (or give a path to an .ndjson file)` : 'give a path to an .ndjson file',
    );
  }
  return path;
}

export function loadScenario(nameOrPath: string = DEFAULT_SCENARIO): ParsedScenario {
  const path = resolveScenarioPath(nameOrPath);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read scenario ${path}: ${(error as Error).message}`);
  }
  return parseScenario(text, displayPath(path));
}

/** Shorter names in messages when the file is under the working directory. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}
