// LuLu's rule export (Rules ▸ Export): a JSON object keyed by process key (signing identifier or path),
// each an array of rules {key, uuid, path, name, csInfo?, endpointAddr, endpointHost?, endpointPort,
// isEndpointAddrRegex (0 exact, 1 regex, 2 CIDR, 3 glob), type, scope (0 process, 1 endpoint,
// 2 process tree), action (0 block, 1 allow), isDisabled?, creation?, expiration?}. Read from LuLu's
// public source (Shared/Rule.m toJSON, App/RulesMenuController.m); this mapping is flowtop's own.
import type { RuleEndpoint, RuleIdentity, RuleSpec } from '../../protocol/messages.js';
import { canonicalIp, parseCidr } from '../ip.js';
import { normalizeHostName } from '../model.js';
import { addMapped, emptyReport, ImportFormatError, isObject, parseTime, type ImportReport } from './report.js';

const SIGNERS: Record<number, string> = { 0: 'unsigned', 1: 'Apple', 2: 'App Store', 3: 'Developer ID', 4: 'ad hoc' };

export function importLulu(value: unknown, now: number): ImportReport {
  if (!isObject(value)) throw new ImportFormatError('a LuLu export is a JSON object keyed by process (signing identifier or path)');
  const report = emptyReport('lulu');
  for (const [key, list] of Object.entries(value)) {
    if (!Array.isArray(list)) throw new ImportFormatError(`a LuLu export maps each process key to a list of rules; "${key.slice(0, 60)}" holds ${typeof list}`);
    list.forEach((item, index) => {
      const name = isObject(item) && typeof item['name'] === 'string' ? item['name'] : undefined;
      const source = `LuLu rule ${name ? `"${name}" ` : ''}(${key}#${index})`;
      if (!isObject(item)) return void report.skipped.push({ source, reason: 'not an object' });
      const mapped = mapRule(item, key, now, source, report);
      if (mapped) addMapped(report, source, mapped.spec, mapped.created);
    });
  }
  return report;
}

function number(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return undefined;
}

function mapRule(item: Record<string, unknown>, key: string, now: number, source: string, report: ImportReport): { spec: RuleSpec; created: number } | undefined {
  const skip = (reason: string): undefined => void report.skipped.push({ source, reason });
  const action = number(item['action']);
  if (action !== 0 && action !== 1) return skip(`action ${JSON.stringify(item['action'])} is neither 0 (block) nor 1 (allow)`);
  const spec: RuleSpec = { action: action === 1 ? 'allow' : 'block', duration: { kind: 'always' } };
  const name = typeof item['name'] === 'string' ? item['name'] : undefined;
  spec.note = `imported from LuLu${name ? `: ${name}` : ''}`;
  if (number(item['isDisabled']) === 1) spec.enabled = false;

  const expiration = item['expiration'] === undefined ? undefined : parseTime(item['expiration']);
  if (item['expiration'] !== undefined && expiration === undefined) return skip(`expiration ${JSON.stringify(item['expiration'])} is not a time`);
  if (expiration !== undefined) {
    if (expiration <= now) return skip(`it expired at ${new Date(expiration).toISOString()}`);
    spec.duration = { kind: 'until', until: expiration };
  }

  const identity = mapIdentity(item, key, source, report);
  if (identity === null) return undefined;
  if (identity) spec.identity = identity;
  if (number(item['scope']) === 2) report.notes.push({ source, note: 'LuLu applied it to the whole process tree; flowtop applies it to the process itself only' });

  const endpoint = mapEndpoint(item, source, report);
  if (endpoint === null) return undefined;
  if (endpoint) spec.endpoint = endpoint;
  return { spec, created: parseTime(item['creation']) ?? now };
}

/** The rule identity; undefined for "any process", null when the rule was skipped. */
function mapIdentity(item: Record<string, unknown>, key: string, source: string, report: ImportReport): RuleIdentity | undefined | null {
  const path = typeof item['path'] === 'string' ? item['path'] : undefined;
  const name = typeof item['name'] === 'string' ? item['name'] : undefined;
  if (path === '*' || key === '*') return undefined;
  const cs = isObject(item['csInfo']) ? item['csInfo'] : undefined;
  const signer = number(cs?.['signatureSigner']);
  const signingId = typeof cs?.['signatureIdentifier'] === 'string' ? cs['signatureIdentifier'] : undefined;
  if (signer === 1 && signingId && /^[A-Za-z0-9._-]+$/.test(signingId)) {
    // The designated requirement of Apple's platform code, as the Security framework writes it.
    return { kind: 'requirement', value: `identifier "${signingId}" and anchor apple`, ...(name ? { label: name } : {}) };
  }
  if (!path || !path.startsWith('/')) {
    report.skipped.push({ source, reason: `no executable path to key it on (path ${JSON.stringify(path ?? null)})` });
    return null;
  }
  const signerName = signer !== undefined ? SIGNERS[signer] ?? `signer ${signer}` : 'unknown signer';
  const why = signingId && signer !== undefined && signer !== 0
    ? `signed (${signerName}, ${signingId}), but LuLu exports the signing identifier, not the full requirement`
    : `${signerName} code`;
  report.notes.push({ source, note: `${why}: imported as a path-only rule (weaker); re-create it from a live flow to key it on the code itself` });
  return { kind: 'path', value: path, ...(name ? { label: name } : {}) };
}

/** The remote endpoint; undefined for anywhere, null when the rule was skipped. */
function mapEndpoint(item: Record<string, unknown>, source: string, report: ImportReport): RuleEndpoint | undefined | null {
  const skip = (reason: string): null => {
    report.skipped.push({ source, reason });
    return null;
  };
  const endpoint: RuleEndpoint = {};
  const addr = typeof item['endpointAddr'] === 'string' ? item['endpointAddr'].trim() : '*';
  const type = number(item['isEndpointAddrRegex']) ?? 0;
  if (addr !== '*' && addr !== '') {
    if (type === 1) return skip(`its endpoint ${JSON.stringify(addr)} is a regular expression; flowtop matches exact host names, domain suffixes, addresses and CIDR blocks`);
    if (type === 2) {
      const cidr = parseCidr(addr);
      if (!cidr) return skip(`its endpoint ${JSON.stringify(addr)} is an address range flowtop cannot express (only CIDR blocks)`);
      endpoint.cidr = addr;
    } else if (type === 3) {
      const domain = addr.startsWith('*.') ? normalizeHostName(addr.slice(2)) : undefined;
      if (!domain || addr.slice(2).includes('*')) return skip(`its endpoint glob ${JSON.stringify(addr)} is not of the form *.domain`);
      endpoint.domain = domain;
      report.notes.push({ source, note: `glob ${addr} imported as domain ${domain}, which also matches ${domain} itself` });
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
