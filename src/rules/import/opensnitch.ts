// OpenSnitch rule files (/etc/opensnitchd/rules/*.json): one rule per file, {created, updated, name,
// description, enabled, precedence, nolog, action (allow|deny|reject), duration (once|until restart|
// always|Go duration), operator {type (simple|regexp|list|network|lists|range), operand, data,
// sensitive, list}}. Read from OpenSnitch's public source (daemon/rule/rule.go, operator.go); this
// mapping is flowtop's own. A rule is imported only when every condition maps: dropping a condition
// would silently widen the rule.
import type { RuleSpec, TransportProtocol } from '../../protocol/messages.js';
import { canonicalIp, parseCidr } from '../ip.js';
import { normalizeHostName } from '../model.js';
import { addMapped, emptyReport, ImportFormatError, isObject, parseTime, type ImportReport } from './report.js';

interface Condition {
  type: string;
  operand: string;
  data: string;
}

class Unsupported extends Error {}

export function importOpenSnitch(files: ReadonlyArray<{ source: string; value: unknown }>, now: number): ImportReport {
  const report = emptyReport('opensnitch');
  for (const { source: file, value } of files) {
    const rules = Array.isArray(value) ? value : [value];
    rules.forEach((rule, index) => {
      const name = isObject(rule) && typeof rule['name'] === 'string' ? rule['name'] : undefined;
      const source = `OpenSnitch rule ${name ? `"${name}"` : `#${index}`} (${file})`;
      try {
        const mapped = mapRule(rule, now, source, report);
        if (mapped) addMapped(report, source, mapped.spec, mapped.created);
      } catch (error) {
        if (error instanceof Unsupported || error instanceof ImportFormatError) report.skipped.push({ source, reason: error.message });
        else throw error;
      }
    });
  }
  return report;
}

const GO_DURATION = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

function goDurationMs(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(amount) * (GO_UNITS[unit as string] ?? 0);
  return total;
}

function mapRule(rule: unknown, now: number, source: string, report: ImportReport): { spec: RuleSpec; created: number } | undefined {
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
  if (rule['enabled'] === false) spec.enabled = false;
  const name = typeof rule['name'] === 'string' ? rule['name'] : '';
  const description = typeof rule['description'] === 'string' ? rule['description'] : '';
  spec.note = `imported from OpenSnitch${name ? `: ${name}` : ''}${description ? ` — ${description}` : ''}`;
  if (rule['precedence'] === true) report.notes.push({ source, note: 'OpenSnitch "precedence" is not kept: in flowtop the most specific rule wins, and block beats allow' });

  for (const condition of conditions(rule['operator'])) apply(spec, condition, source, report);
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
      } catch {
        throw new Unsupported('its operator list in "data" is not valid JSON');
      }
    }
    if (!Array.isArray(list) || list.length === 0) throw new Unsupported('its operator list is empty');
    return list.flatMap((item) => conditions(item));
  }
  const data = operator['data'];
  return [{ type, operand: String(operator['operand'] ?? ''), data: typeof data === 'string' ? data.trim() : String(data ?? '') }];
}

/** "^(|.*\.)example\.com$", as OpenSnitch's prompt writes "this domain and its subdomains". */
const DOMAIN_REGEXP = /^\^\(\|\.\*\\\.\)((?:[A-Za-z0-9_-]+\\\.)*[A-Za-z0-9_-]+)\$$/;

function apply(spec: RuleSpec, c: Condition, source: string, report: ImportReport): void {
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
    report.notes.push({ source, note: `process.path ${c.data} imported as a path-only rule (weaker): re-create it from a live flow to key it on the executable's hash or package` });
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
    const protocol = PROTOCOLS[c.data.toLowerCase()];
    if (!protocol) throw new Unsupported(`${what}: flowtop matches tcp, udp and icmp`);
    if (/6$/.test(c.data)) report.notes.push({ source, note: `protocol ${c.data} imported as ${protocol}: the rule now covers IPv4 as well` });
    spec.protocol = protocol;
    return;
  }
  if (c.type === 'regexp') throw new Unsupported(`${what}: regular expressions are not supported`);
  if (c.type === 'lists') throw new Unsupported(`${what}: list files (${c.operand}) are not supported`);
  if (c.operand.startsWith('process.hash.')) throw new Unsupported(`${what}: flowtop identifies code by SHA-256 or package, and an ${c.operand.slice(13).toUpperCase()} hash cannot be converted`);
  throw new Unsupported(`${what}: flowtop rules do not match on ${c.operand}`);
}

const PROTOCOLS: Record<string, TransportProtocol> = { tcp: 'tcp', tcp6: 'tcp', udp: 'udp', udp6: 'udp', icmp: 'icmp', icmp6: 'icmp' };
