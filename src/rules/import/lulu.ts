// LuLu's rule export (Rules ▸ Export): a JSON object keyed by process key (signing identifier or path),
// each an array of rules {key, uuid, path, name, csInfo?, endpointAddr, endpointHost?, endpointPort,
// isEndpointAddrRegex (0 exact, 1 regex, 2 CIDR, 3 glob), type, scope (0 process, 1 endpoint,
// 2 process tree), action (0 block, 1 allow), isDisabled?, creation?, expiration?}. Read from LuLu's
// public source (Shared/Rule.m toJSON, App/RulesMenuController.m, Extension/Rules.m find:,
// Shared/signing.m); this mapping is flowtop's own.
//
// How LuLu decides, and how the import keeps it (Rules.m find:): it gathers the global rules (key
// "*"), then directory rules (a path ending in "/*": every program under it), then the process's own
// rules, and keeps the last match in that order at each of three levels: address and port both given
// (exact), one of them "*" (partial), both "*" (any). The exact level beats partial, which beats any,
// whatever the action or whose rule it is. Imported rules get priorities that encode level and order,
// so the same rule decides. LuLu filters outbound flows only: imported rules are outbound.
import type { RuleEndpoint, RuleIdentity, RuleSpec } from '../../protocol/messages.js';
import { canonicalIp, parseCidr } from '../ip.js';
import { normalizeHostName } from '../schema.js';
import { addMapped, emptyReport, ImportFormatError, isObject, parseTime, type ImportReport } from './report.js';

const SIGNERS: Record<number, string> = { 0: 'unsigned', 1: 'Apple', 2: 'App Store', 3: 'Developer ID', 4: 'ad hoc' };

/** LuLu 2.9.7 to 3.9.0 wrote a rule's expiry under a second "creation" key (Rule.m toJSON), right
 *  after the first; JSON.parse would keep only the expiry, as the creation time. This renames the
 *  second key of each such pair to "expiration" before parsing. */
export function repairLuluExport(text: string): string {
  return text.replace(/("creation"\s*:\s*"[^"]*"\s*,\s*)"creation"(\s*:)/g, '$1"expiration"$2');
}

const ANY = '*';
/** The levels of Rules.m find:, weakest first. */
const LEVEL = { any: 1, partial: 2, exact: 3 } as const;

export function importLulu(value: unknown, now: number): ImportReport {
  if (!isObject(value)) throw new ImportFormatError('a LuLu export is a JSON object keyed by process (signing identifier or path)');
  const report = emptyReport('lulu');
  const entries = Object.entries(value);
  for (const [key, list] of entries) {
    if (!Array.isArray(list)) throw new ImportFormatError(`a LuLu export maps each process key to a list of rules; "${key.slice(0, 60)}" holds ${typeof list}`);
  }
  // LuLu's candidate order: global rules, directory rules, then the process's own.
  const group = ([key, list]: [string, unknown]): number => (key === ANY ? 0 : (list as unknown[]).some(isDirectoryRule) ? 1 : 2);
  const ordered = [...entries].sort((a, b) => group(a) - group(b));
  const total = entries.reduce((n, [, list]) => n + (list as unknown[]).length, 0);
  let position = 0;
  for (const [key, list] of ordered) {
    (list as unknown[]).forEach((item, index) => {
      position++;
      const name = isObject(item) && typeof item['name'] === 'string' ? item['name'] : undefined;
      const source = `LuLu rule ${name ? `"${name}" ` : ''}(${key}#${index})`;
      if (!isObject(item)) return void report.skipped.push({ source, reason: 'not an object' });
      const notes: string[] = [];
      const mapped = mapRule(item, key, now, source, report, notes);
      if (!mapped) return;
      // Level first, then LuLu's order: the later match wins within a level.
      mapped.spec.priority = level(item) * (total + 1) + position;
      addMapped(report, source, mapped.spec, mapped.created, notes);
    });
  }
  if (report.rules.length > 0) {
    report.notes.push({ source: 'LuLu rules', note: 'their order is kept with rule priorities: address and port before address or port alone before neither, then the later rule in LuLu\'s order (global, folder, the program\'s own)' });
  }
  return report;
}

function isDirectoryRule(item: unknown): boolean {
  return isObject(item) && typeof item['path'] === 'string' && item['path'].startsWith('/') && item['path'].endsWith('/*');
}

function level(item: Record<string, unknown>): number {
  const addr = typeof item['endpointAddr'] === 'string' ? item['endpointAddr'].trim() : ANY;
  const port = typeof item['endpointPort'] === 'string' || typeof item['endpointPort'] === 'number' ? String(item['endpointPort']).trim() : ANY;
  // "0.0.0.0/0" and "::/0" count as any address (for flows of their family: the CIDR block says so).
  const anyAddr = addr === ANY || addr === '' || addr === '0.0.0.0/0' || addr === '::/0';
  const anyPort = port === ANY || port === '';
  return anyAddr && anyPort ? LEVEL.any : anyAddr || anyPort ? LEVEL.partial : LEVEL.exact;
}

function number(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return undefined;
}

function mapRule(item: Record<string, unknown>, key: string, now: number, source: string, report: ImportReport, notes: string[]): { spec: RuleSpec; created: number } | undefined {
  const skip = (reason: string): undefined => void report.skipped.push({ source, reason });
  const action = number(item['action']);
  if (action !== 0 && action !== 1) return skip(`action ${JSON.stringify(item['action'])} is neither 0 (block) nor 1 (allow)`);
  const spec: RuleSpec = { action: action === 1 ? 'allow' : 'block', duration: { kind: 'always' }, direction: 'outbound' };
  const name = typeof item['name'] === 'string' ? item['name'] : undefined;
  spec.note = `imported from LuLu${name ? `: ${name}` : ''}`;
  if (number(item['isDisabled']) === 1) spec.enabled = false;

  const expiration = item['expiration'] === undefined ? undefined : parseTime(item['expiration']);
  if (item['expiration'] !== undefined && expiration === undefined) return skip(`expiration ${JSON.stringify(item['expiration'])} is not a time`);
  if (expiration !== undefined) {
    if (expiration <= now) return skip(`it expired at ${new Date(expiration).toISOString()}`);
    spec.duration = { kind: 'until', until: expiration };
  }

  const identity = mapIdentity(item, key, source, report, notes);
  if (identity === null) return undefined;
  if (identity) spec.identity = identity;
  if (number(item['scope']) === 2) notes.push('LuLu applied it to the whole process tree; flowtop applies it to the process itself only');

  const endpoint = mapEndpoint(item, source, report, notes);
  if (endpoint === null) return undefined;
  if (endpoint) spec.endpoint = endpoint;
  return { spec, created: parseTime(item['creation']) ?? now };
}

/** Leaf certificates (first of `signatureAuthorities`): Apple's platform code, and the Mac App Store
 *  signing that LuLu also files under "Apple" for Apple's own App Store apps (signing.m). */
const PLATFORM_LEAF = 'Software Signing';

/** The rule identity; undefined for "any process", null when the rule was skipped. */
function mapIdentity(item: Record<string, unknown>, key: string, source: string, report: ImportReport, notes: string[]): RuleIdentity | undefined | null {
  const path = typeof item['path'] === 'string' ? item['path'] : undefined;
  const name = typeof item['name'] === 'string' ? item['name'] : undefined;
  const label = name ? { label: name } : {};
  if (path === ANY || key === ANY) return undefined;
  if (isDirectoryRule(item)) {
    // LuLu matches a directory rule by path prefix (Rules.m find:), as a flowtop folder does.
    return { kind: 'path', value: (path as string).slice(0, -1), ...label };
  }
  const cs = isObject(item['csInfo']) ? item['csInfo'] : undefined;
  const signer = number(cs?.['signatureSigner']);
  const signingId = typeof cs?.['signatureIdentifier'] === 'string' ? cs['signatureIdentifier'] : undefined;
  const authorities = Array.isArray(cs?.['signatureAuthorities']) ? (cs['signatureAuthorities'] as unknown[]).filter((a): a is string => typeof a === 'string') : undefined;
  const leaf = authorities?.[0];
  const platform = signer === 1 && signingId !== undefined && /^[A-Za-z0-9._-]+$/.test(signingId) && (leaf === undefined || leaf === PLATFORM_LEAF);
  if (platform) {
    // The designated requirement of Apple's platform code, as the Security framework writes it.
    if (leaf === undefined) notes.push('no certificate list was exported: taken to be Apple\'s platform code ("anchor apple")');
    return { kind: 'requirement', value: `identifier "${signingId}" and anchor apple`, ...label };
  }
  if (!path || !path.startsWith('/')) {
    report.skipped.push({ source, reason: `no executable path to key it on (path ${JSON.stringify(path ?? null)})` });
    return null;
  }
  const signerName = signer === 1 ? `Apple, through the App Store (${leaf})` : signer !== undefined ? SIGNERS[signer] ?? `signer ${signer}` : 'unknown signer';
  const signed = signingId !== undefined && signer !== undefined && signer !== 0;
  const why = signed
    ? `LuLu matched it by its signature (${signingId}, ${signerName}), but exports the signing identifier, not the requirement`
    : `${signerName} code`;
  // A bundle ("/Applications/OpenMTP.app", saved from LuLu's Add Rule window): no program runs at
  // that path; the programs inside it do.
  const bundle = /\.app\/?$/.test(path);
  if (bundle) {
    const folder = path.endsWith('/') ? path : `${path}/`;
    notes.push(`${why}: imported as a folder rule for the programs inside ${folder} (path only, weaker); re-create it from a live flow to key it on the code itself`);
    return { kind: 'path', value: folder, ...label };
  }
  notes.push(`${why}: imported as a path-only rule (weaker); re-create it from a live flow to key it on the code itself`);
  return { kind: 'path', value: path, ...label };
}

/** The remote endpoint; undefined for anywhere, null when the rule was skipped. */
function mapEndpoint(item: Record<string, unknown>, source: string, report: ImportReport, notes: string[]): RuleEndpoint | undefined | null {
  const skip = (reason: string): null => {
    report.skipped.push({ source, reason });
    return null;
  };
  const endpoint: RuleEndpoint = {};
  const addr = typeof item['endpointAddr'] === 'string' ? item['endpointAddr'].trim() : '*';
  const type = number(item['isEndpointAddrRegex']) ?? 0;
  if (addr === '0.0.0.0/0' || addr === '::/0') {
    // LuLu takes these as "any address" of that family, whatever the address type says.
    endpoint.cidr = addr;
  } else if (addr !== '*' && addr !== '') {
    if (type === 1) return skip(`its endpoint ${JSON.stringify(addr)} is a regular expression; flowtop matches exact host names, domain suffixes, addresses and CIDR blocks`);
    if (type === 2) {
      const cidr = parseCidr(addr);
      if (!cidr) return skip(`its endpoint ${JSON.stringify(addr)} is an address range flowtop cannot express (only CIDR blocks)`);
      endpoint.cidr = addr;
    } else if (type === 3) {
      const domain = addr.startsWith('*.') ? normalizeHostName(addr.slice(2)) : undefined;
      if (!domain || addr.slice(2).includes('*')) return skip(`its endpoint glob ${JSON.stringify(addr)} is not of the form *.domain`);
      endpoint.domain = domain;
      notes.push(`glob ${addr} imported as domain ${domain}, which also matches ${domain} itself`);
    } else if (canonicalIp(addr)) {
      endpoint.address = addr;
    } else {
      const host = normalizeHostName(addr);
      if (!host) return skip(`its endpoint ${JSON.stringify(addr)} is neither an address nor a host name`);
      endpoint.host = host;
    }
  }
  const port = typeof item['endpointPort'] === 'string' || typeof item['endpointPort'] === 'number' ? String(item['endpointPort']).trim() : '*';
  if (port !== '*' && port !== '') {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return skip(`its port ${JSON.stringify(port)} is not a port number`);
    endpoint.port = Number(port);
  }
  return Object.keys(endpoint).length > 0 ? endpoint : undefined;
}
