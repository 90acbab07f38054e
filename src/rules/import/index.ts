// Reads a rules file to import: flowtop's own export, a LuLu export, or OpenSnitch rule files (one
// file, or the rules folder). The format is recognised from the content unless it is given.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../errors.js';
import { parseRulesDocument } from '../document.js';
import { importLulu, repairLuluExport } from './lulu.js';
import { importOpenSnitch, type OpenSnitchFile } from './opensnitch.js';
import { emptyReport, ImportFormatError, isObject, type ImportFormat, type ImportReport } from './report.js';

export type { ImportFormat, ImportReport };
export { ImportFormatError, importLulu, importOpenSnitch };

export const IMPORT_FORMATS: readonly ImportFormat[] = ['flowtop', 'lulu', 'opensnitch'];

/** Which format a parsed JSON value is in, or undefined when it is none of them. */
export function detectFormat(value: unknown): ImportFormat | undefined {
  if (isObject(value) && 'version' in value && 'rules' in value) return 'flowtop';
  if (isObject(value) && 'operator' in value && 'action' in value) return 'opensnitch';
  if (Array.isArray(value) && value.length > 0 && value.every((v) => isObject(v) && 'operator' in v)) return 'opensnitch';
  if (isObject(value) && Object.values(value).length > 0 && Object.values(value).every((v) => Array.isArray(v))) return 'lulu';
  return undefined;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}`, 'check the path');
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

async function readJson(path: string): Promise<unknown> {
  return parseJson(await readText(path), path);
}

/** Converts a flowtop document's rules (ids, times and counters kept). */
export function importFlowtop(value: unknown, source: string): ImportReport {
  const checked = parseRulesDocument(value);
  if (!checked.ok) throw new UserError(`${source} is not a valid flowtop rules document:\n  - ${checked.problems.join('\n  - ')}`);
  const report = emptyReport('flowtop');
  report.rules = checked.value.rules;
  return report;
}

export async function readImport(path: string, format: ImportFormat | undefined, now: number = Date.now()): Promise<ImportReport> {
  let isDirectory = false;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message}`, 'check the path');
  }
  try {
    if (isDirectory) {
      if (format && format !== 'opensnitch') throw new UserError(`${path} is a folder; only OpenSnitch rules come as a folder of files`);
      const names = (await readdir(path)).filter((n) => n.endsWith('.json')).sort();
      if (names.length === 0) throw new UserError(`${path} holds no .json rule files`);
      // One unreadable or invalid file must not stop the others: opensnitchd skips it and loads the rest.
      const files = await Promise.all(names.map(async (name): Promise<OpenSnitchFile> => {
        try {
          return { source: name, value: await readJson(join(path, name)) };
        } catch (error) {
          if (error instanceof UserError) return { source: name, error: error.message.replace(`${join(path, name)} is `, '') };
          throw error;
        }
      }));
      return importOpenSnitch(files, now);
    }
    const text = await readText(path);
    const value = parseJson(text, path);
    const chosen = format ?? detectFormat(value);
    switch (chosen) {
      case 'flowtop':
        return importFlowtop(value, path);
      case 'lulu':
        return importLulu(parseJson(repairLuluExport(text), path), now);
      case 'opensnitch':
        return importOpenSnitch([{ source: path, value }], now);
      case undefined:
        throw new UserError(`cannot tell the format of ${path}`, 'pass --format flowtop, --format lulu or --format opensnitch');
    }
  } catch (error) {
    if (error instanceof ImportFormatError) throw new UserError(`${path}: ${error.message}`, 'check --format');
    throw error;
  }
}
