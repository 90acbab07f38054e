// One valid example of every protocol message, with every optional field used somewhere.
import type { ClientMessage, ExtensionMessage, HelloMessage, Rule } from '../../src/protocol/messages.js';
import { encodeLinuxToken, encodeAuditToken } from '../../src/protocol/tokens.js';

export const linuxToken = encodeLinuxToken({ pid: 4242, startTime: 123456n, pidfsInode: 987n }).toString('base64');
export const auditToken = encodeAuditToken({ auid: 501, euid: 501, egid: 20, ruid: 501, rgid: 20, pid: 4242, asid: 100017, pidversion: 77 }).toString('base64');

export const hello: HelloMessage = {
  type: 'hello',
  protocol: 1,
  extension: { name: 'test-extension', version: '0.0.1' },
  platform: 'linux',
  host: 'test-host',
  capabilities: ['verdicts', 'rules', 'bytes', 'host-names', 'end-flows'],
  tokenKind: 'linux-pidfd-v1',
  mode: { failOpen: false, attribution: 'sock_diag + pidfd', defaultAction: 'block', timeoutMs: 30000, passive: false, history: '/var/lib/flowtop/history.db' },
};

export const rule: Rule = {
  id: 'r1',
  action: 'block',
  blockMode: 'reject',
  identity: { kind: 'package', value: '/usr/bin/curl', package: 'curl', label: 'curl' },
  endpoint: { cidr: '10.0.0.0/8', portRange: [1000, 2000], family: 'ipv4' },
  protocol: 'tcp',
  direction: 'outbound',
  duration: { kind: 'process', token: linuxToken },
  note: 'from a test',
  enabled: true,
  priority: 3,
  created: 1_700_000_000_000,
  lastHit: 1_700_000_001_000,
  hits: 3,
};

/** The endpoint fields `rule` leaves out (a rule names at most one of host, domain, address, cidr). */
export const otherRules: Rule[] = [
  { id: 'r2', action: 'allow', identity: { kind: 'sha256', value: 'ab'.repeat(32), label: '/usr/bin/curl' }, endpoint: { host: 'example.com', port: 443 }, duration: { kind: 'always' }, enabled: true, created: 1_700_000_000_000, hits: 0 },
  { id: 'r3', action: 'block', endpoint: { domain: 'example.com' }, duration: { kind: 'until', until: 1_800_000_000_000 }, session: true, enabled: false, created: 1_700_000_000_000, hits: 0 },
  { id: 'r4', action: 'block', identity: { kind: 'path', value: '/opt/tools/' }, endpoint: { address: '2001:db8::1', family: 'ipv6' }, duration: { kind: 'always' }, enabled: true, created: 1_700_000_000_000, hits: 0 },
];

export function flow(id: string, overrides: Partial<Extract<ExtensionMessage, { type: 'flow' }>['flow']> = {}): Extract<ExtensionMessage, { type: 'flow' }> {
  return {
    type: 'flow',
    flow: {
      id,
      time: 1_700_000_000_123,
      direction: 'outbound',
      protocol: 'tcp',
      family: 'ipv4',
      local: { address: '10.0.0.2', port: 51234 },
      remote: { address: '93.184.216.34', port: 443 },
      remoteHost: { name: 'example.com', source: 'dns' },
      token: linuxToken,
      pid: 4242,
      uid: 1000,
      pending: { deadline: 1_700_000_030_123 },
      ...overrides,
    },
  };
}

export const extensionMessages: ExtensionMessage[] = [
  hello,
  flow('f1'),
  flow('f2', {
    family: 'ipv6', local: { address: '::1', port: 1 }, remote: { address: '2001:db8::1', port: 53 }, protocol: 'udp',
    direction: 'inbound', appToken: auditToken, token: auditToken, pending: undefined,
    verdict: { action: 'allow', by: 'rule', ruleId: 'r1' }, ownerError: undefined,
  }),
  flow('f4', { pending: undefined, verdict: { action: 'block', by: 'rule', ruleId: 'r2', blockMode: 'reject' }, identity: { kind: 'package', package: 'wget', value: '/usr/bin/wget', path: '/usr/bin/wget' } }),
  flow('f3', { token: undefined, pid: undefined, uid: undefined, ownerError: 'no socket owner found (ENOENT)', pending: undefined, verdict: { action: 'block', by: 'default', blockMode: 'drop' } }),
  { type: 'bytes', counters: [{ id: 'f1', rx: 1024, tx: 77 }, { id: 'f2', rx: 0, tx: 0 }], time: 1_700_000_002_000 },
  { type: 'end', id: 'f1', time: 1_700_000_003_000, reason: 'closed' },
  { type: 'verdict', id: 'f1', time: 1_700_000_001_500, verdict: { action: 'block', by: 'user', blockMode: 'reject' } },
  { type: 'rules', rules: [rule], continues: true, ref: 'q1' },
  { type: 'rules', rules: [] },
  { type: 'rules', rules: otherRules },
  { type: 'rule-changed', op: 'added', rule, ref: 'q2' },
  { type: 'rule-changed', op: 'removed', rule: { ...rule, duration: { kind: 'until', until: 1_800_000_000_000 } } },
  { type: 'error', code: 'unknown-flow', message: 'no flow "f9"', ref: 'q3' },
];

export const clientMessages: ClientMessage[] = [
  { type: 'subscribe', protocol: 1, client: { name: 'flowtop', version: '0.1.0' }, ref: 's1' },
  { type: 'verdict', id: 'f1', action: 'allow', remember: 'once' },
  { type: 'verdict', id: 'f1', action: 'block', remember: 'process', scope: 'endpoint', blockMode: 'drop', ref: 'v1' },
  { type: 'verdict', id: 'f1', action: 'allow', remember: 'always', scope: 'process' },
  { type: 'rule-add', rule: { action: 'allow', duration: { kind: 'always' }, identity: { kind: 'path', value: '/usr/bin/curl' } }, ref: 'a1' },
  { type: 'rule-add', rule: { ...stripRule(rule) } },
  { type: 'rule-remove', id: 'r1', ref: 'd1' },
  { type: 'rules-list' },
];

function stripRule(r: Rule): Omit<Rule, 'id' | 'created' | 'hits' | 'lastHit'> {
  const { id: _id, created: _created, hits: _hits, lastHit: _lastHit, ...spec } = r;
  return spec;
}
