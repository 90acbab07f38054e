// OpenSnitch rule files (/etc/opensnitchd/rules/*.json): one rule per file, {created, updated, name,
// description, enabled, precedence, nolog, action (allow|deny|reject), duration (once|until restart|
// always|Go duration), operator {type (simple|regexp|list|network|lists|range), operand, data,
// sensitive, list}}. Read from OpenSnitch's public source (daemon/rule/rule.go, loader.go,
// operator.go; ui/opensnitch/rules.py for the UI's export); this mapping is flowtop's own. A rule is
// imported only when every condition maps: dropping a condition would silently widen the rule.
//
// How opensnitchd decides, and how the import keeps it:
// - Rules are keyed by name (a later file with the same name replaces the earlier one) and tried in
//   name order. The first match that is deny/reject or has `precedence` decides; otherwise the last
//   allow that matched. Those "deciding" rules get priorities (the first by name the highest), so
//   they outrank every other rule as in OpenSnitch; plain allow rules keep no priority: whichever of
//   them flowtop picks, the flow is allowed, as OpenSnitch allows it.
// - A missing `enabled` is false (Go's zero value): the UI's export leaves false fields out.
// - Protocols name the IP version: tcp/udp/icmp are IPv4, tcp6/udp6/icmp6 IPv6.
// - A file that is not valid JSON is skipped, and the rest loaded.
import type { RuleSpec, TransportProtocol } from '../../protocol/messages.js';
import { canonicalIp, parseCidr } from '../ip.js';
import { normalizeHostName } from '../schema.js';
import { addMapped, emptyReport, ImportFormatError, isObject, parseTime, type ImportReport } from './report.js';

/** One rule file: its parsed JSON, or why it could not be read. */
export type OpenSnitchFile = { source: string; value: unknown } | { source: string; error: string };

interface Condition {
  type: string;
  operand: string;
  data: string;
  sensitive: boolean;
}

class Unsupported extends Error {}

interface Entry {
  source: string;
  name: string;
  value: unknown;
}

export function importOpenSnitch(files: readonly OpenSnitchFile[], now: number): ImportReport {
  const report = emptyReport('opensnitch');
  // opensnitchd keeps one rule per name: a later file (in file name order) replaces an earlier one.
  const byName = new Map<string, Entry>();
  for (const file of files) {
    if ('error' in file) {
      report.skipped.push({ source: `OpenSnitch file ${file.source}`, reason: `${file.error}; opensnitchd skips such a file too and loads the rest` });
      continue;
    }
    const rules = Array.isArray(file.value) ? file.value : [file.value];
    rules.forEach((value, index) => {
      if (!isObject(value)) {
        return void report.skipped.push({ source: `OpenSnitch rule #${index} (${file.source})`, reason: 'not an OpenSnitch rule: expected a JSON object with "action", "duration" and "operator"' });
      }
      // A rule without a name has the name "" to opensnitchd: it sorts first, and such rules replace each other.
      const name = typeof value['name'] === 'string' ? value['name'] : '';
      const entry: Entry = { source: `OpenSnitch rule ${name !== '' ? `"${name}"` : `#${index}`} (${file.source})`, name, value };
      const replaced = byName.get(name);
      if (replaced) report.skipped.push({ source: replaced.source, reason: `replaced by the rule of the same name in ${file.source}, as opensnitchd does` });
      byName.set(name, entry);
    });
  }
  const ordered = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const priorities = decidingPriorities(ordered.map((e) => e.value));
  ordered.forEach((entry, index) => importOne(report, entry, now, priorities[index]));
  if (priorities.some((p) => p !== undefined)) {
    report.notes.push({
      source: 'OpenSnitch rules',
      note: 'their order is kept with rule priorities: deny and reject rules, and rules with "precedence", outrank all others, the first by name the highest (as opensnitchd tries them); other allow rules have none',
    });
  }
  return report;
}

/** Deny/reject rules and rules with precedence decide at their first match: in name order, each
 *  outranks the ones after it and every other rule. Others get no priority. */
function decidingPriorities(rules: readonly unknown[]): Array<number | undefined> {
  const deciding = rules.map((r) => isObject(r) && (r['action'] === 'deny' || r['action'] === 'reject' || r['precedence'] === true));
  let next = deciding.filter(Boolean).length;
  return deciding.map((d) => (d ? next-- : undefined));
}

function importOne(report: ImportReport, entry: Entry, now: number, priority: number | undefined): void {
  const notes: string[] = [];
  try {
    const mapped = mapRule(entry.value, now, notes);
    if (!mapped) return;
    if (priority !== undefined) mapped.spec.priority = priority;
    addMapped(report, entry.source, mapped.spec, mapped.created, notes);
  } catch (error) {
    if (error instanceof Unsupported || error instanceof ImportFormatError) report.skipped.push({ source: entry.source, reason: error.message });
    else throw error;
  }
}

const GO_DURATION = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

function goDurationMs(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(amount) * (GO_UNITS[unit as string] ?? 0);
  return total;
}

function mapRule(rule: unknown, now: number, notes: string[]): { spec: RuleSpec; created: number } | undefined {
  if (!isObject(rule) || !isObject(rule['operator'])) {
    throw new ImportFormatError('not an OpenSnitch rule: expected a JSON object with "action", "duration" and "operator"');
  }
  const created = parseTime(rule['created']) ?? now;
  const action = rule['action'];
  const spec: RuleSpec = { action: 'allow', duration: { kind: 'always' }, direction: 'outbound' };
  if (action === 'deny' || action === 'reject') {
    spec.action = 'block';
    if (action === 'reject') spec.blockMode = 'reject';
  } else if (action !== 'allow') {
    throw new Unsupported(`action ${JSON.stringify(action)} is not allow, deny or reject`);
  }
  const duration = rule['duration'];
  if (duration === 'once') throw new Unsupported('its duration is "once": a single decision, never a stored rule');
  if (duration === 'until restart') throw new Unsupported('its duration is "until restart": it lasted only while that opensnitchd ran');
  if (typeof duration === 'string' && GO_DURATION.test(duration)) {
    const until = created + goDurationMs(duration);
    if (until <= now) throw new Unsupported(`its duration ${duration} from ${new Date(created).toISOString()} has passed`);
    spec.duration = { kind: 'until', until: Math.floor(until) };
  } else if (duration !== 'always') {
    throw new Unsupported(`duration ${JSON.stringify(duration)} is not one flowtop knows`);
  }
  // Only true enables: opensnitchd reads a missing field as false, and the UI's export omits it then.
  if (rule['enabled'] !== true) spec.enabled = false;
  const name = typeof rule['name'] === 'string' ? rule['name'] : '';
  const description = typeof rule['description'] === 'string' ? rule['description'] : '';
  spec.note = `imported from OpenSnitch${name ? `: ${name}` : ''}${description ? ` — ${description}` : ''}`;
  if (rule['nolog'] === true) notes.push('"nolog" is not kept: flowtop shows and records every flow, also those this rule decides');

  for (const condition of conditions(rule['operator'])) apply(spec, condition, notes);
  if (spec.endpoint && Object.keys(spec.endpoint).length === 0) delete spec.endpoint;
  return { spec, created };
}

function conditions(operator: unknown): Condition[] {
  if (!isObject(operator)) throw new Unsupported('an operator is not an object');
  const type = String(operator['type'] ?? '');
  if (type === 'list') {
    let list = operator['list'];
    // OpenSnitch also writes the list as a JSON string in "data" (and sometimes only there).
    if ((!Array.isArray(list) || list.length === 0) && typeof operator['data'] === 'string' && operator['data'].trim().startsWith('[')) {
      try {
        list = JSON.parse(operator['data']);
      } catch (error) {
        if (!(error instanceof SyntaxError)) throw error;
        throw new Unsupported('its operator list in "data" is not valid JSON');
      }
    }
    if (!Array.isArray(list) || list.length === 0) throw new Unsupported('its operator list is empty');
    return list.flatMap((item) => conditions(item));
  }
  const data = operator['data'];
  return [{ type, operand: String(operator['operand'] ?? ''), data: typeof data === 'string' ? data.trim() : String(data ?? ''), sensitive: operator['sensitive'] === true }];
}

/** "^(|.*\.)example\.com$", as OpenSnitch's prompt writes "this domain and its subdomains"; before
 *  early 2025 its UI wrote it without the closing "$". */
const DOMAIN_REGEXP = /^\^\(\|\.\*\\\.\)((?:[A-Za-z0-9_-]+\\\.)*[A-Za-z0-9_-]+)(\$?)$/;

function apply(spec: RuleSpec, c: Condition, notes: string[]): void {
  const endpoint = (spec.endpoint ??= {});
  const once = (field: string, present: boolean): void => {
    if (present) throw new Unsupported(`it has two ${field} conditions`);
  };
  const remoteTaken = (): boolean => Boolean(endpoint.host || endpoint.domain || endpoint.address || endpoint.cidr);
  const what = `${c.operand} ${c.type} ${JSON.stringify(c.data.length > 60 ? `${c.data.slice(0, 57)}...` : c.data)}`;

  if (c.operand === 'true') return;
  if (c.operand === 'process.path' && c.type === 'simple') {
    once('process', spec.identity !== undefined);
    if (!c.data.startsWith('/')) throw new Unsupported(`${what}: not an absolute path`);
    spec.identity = { kind: 'path', value: c.data };
    notes.push(`process.path ${c.data} imported as a path-only rule (weaker): re-create it from a live flow to key it on the executable's hash or package`);
    return;
  }
  if (c.operand === 'dest.host' && c.type === 'simple') {
    once('remote', remoteTaken());
    const host = normalizeHostName(c.data);
    if (!host) throw new Unsupported(`${what}: not a host name`);
    endpoint.host = host;
    return;
  }
  if (c.operand === 'dest.host' && c.type === 'regexp') {
    const m = DOMAIN_REGEXP.exec(c.data);
    const domain = m ? normalizeHostName((m[1] as string).replace(/\\\./g, '.')) : undefined;
    if (!domain) throw new Unsupported(`${what}: regular expressions are not supported (only OpenSnitch's "domain and subdomains" pattern ^(|.*\\.)example\\.com$ maps, to a domain rule)`);
    once('remote', remoteTaken());
    endpoint.domain = domain;
    if (m?.[2] !== '$') {
      notes.push(`${what} has no closing "$", so OpenSnitch also matched names that only begin with ${domain} (such as ${domain}.example.net); imported as the domain ${domain} and its subdomains`);
    }
    return;
  }
  if (c.operand === 'dest.ip' && c.type === 'simple') {
    once('remote', remoteTaken());
    if (!canonicalIp(c.data)) throw new Unsupported(`${what}: not an IP address`);
    endpoint.address = c.data;
    return;
  }
  if (c.operand === 'dest.network' && c.type === 'network') {
    once('remote', remoteTaken());
    if (!parseCidr(c.data)) throw new Unsupported(`${what}: not a CIDR block (network aliases such as LAN are not supported)`);
    endpoint.cidr = c.data;
    return;
  }
  if (c.operand === 'dest.port' && (c.type === 'simple' || c.type === 'range')) {
    once('port', endpoint.port !== undefined || endpoint.portRange !== undefined);
    const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(c.data);
    if (!m || (c.type === 'simple' && m[2] !== undefined)) throw new Unsupported(`${what}: not a port${c.type === 'range' ? ' range' : ''}`);
    if (m[2] !== undefined) endpoint.portRange = [Number(m[1]), Number(m[2])];
    else endpoint.port = Number(m[1]);
    return;
  }
  if (c.operand === 'protocol' && c.type === 'simple') {
    once('protocol', spec.protocol !== undefined);
    // OpenSnitch names the connection "tcp" or "tcp6" (IPv6), compared ignoring case unless sensitive.
    const name = c.sensitive ? c.data : c.data.toLowerCase();
    const protocol = PROTOCOLS[name];
    if (!protocol) throw new Unsupported(`${what}: flowtop matches tcp, udp and icmp${c.sensitive && PROTOCOLS[c.data.toLowerCase()] ? ' (and this case-sensitive condition never matched in OpenSnitch, which writes protocols in lowercase)' : ''}`);
    spec.protocol = protocol;
    endpoint.family = name.endsWith('6') ? 'ipv6' : 'ipv4';
    return;
  }
  if (c.type === 'regexp') throw new Unsupported(`${what}: regular expressions are not supported`);
  if (c.type === 'lists') throw new Unsupported(`${what}: list files (${c.operand}) are not supported`);
  if (c.operand.startsWith('process.hash.')) throw new Unsupported(`${what}: flowtop identifies code by SHA-256 or package, and an ${c.operand.slice(13).toUpperCase()} hash cannot be converted`);
  throw new Unsupported(`${what}: flowtop rules do not match on ${c.operand}`);
}

const PROTOCOLS: Record<string, TransportProtocol> = { tcp: 'tcp', tcp6: 'tcp', udp: 'udp', udp6: 'udp', icmp: 'icmp', icmp6: 'icmp' };
