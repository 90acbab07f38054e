// Small scenarios for tests, written the way a person would write one by hand.
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attribution } from '../../src/attribution/types.js';
import { encodeAuditToken } from '../../src/protocol/tokens.js';

export function auditToken(pid: number, pidversion: number): string {
  return encodeAuditToken({ auid: 501, euid: 501, egid: 20, ruid: 501, rgid: 20, pid, asid: 100_017, pidversion }).toString('base64');
}

export const CURL_A = auditToken(7311, 1);
export const CURL_B = auditToken(7402, 1);
export const TOOL = auditToken(8502, 1);
export const DAEMON = auditToken(391, 2);
export const GONE = auditToken(8841, 1);
export const UNRECORDED = auditToken(9999, 9);

const curl = (pid: number): Attribution => ({
  trust: 'secure', pid, uid: 501, user: 'anna', name: 'curl', path: '/usr/bin/curl',
  identity: 'identifier "com.apple.curl" and anchor apple', signer: { kind: 'apple', label: 'Apple (platform binary)' },
});

export const ATTRIBUTIONS: Record<string, Attribution> = {
  [CURL_A]: curl(7311),
  [CURL_B]: curl(7402),
  [TOOL]: {
    trust: 'secure', pid: 8502, uid: 501, name: 'dropzone-sync', path: '/Users/anna/Downloads/DropzoneSync/dropzone-sync',
    identity: `sha256:${'ab'.repeat(32)}`, sha256: 'ab'.repeat(32), signer: { kind: 'unsigned', label: 'unsigned' },
  },
  [DAEMON]: {
    trust: 'insecure', pid: 391, uid: 0, name: 'trustd', path: '/usr/libexec/trustd',
    reason: { call: 'SecCodeCopyGuestWithAttributes', errno: 'EPERM', code: 100_001, message: 'refused' },
  },
  [GONE]: { trust: 'gone', pid: 8841, reason: { call: 'SecCodeCopyGuestWithAttributes', errno: 'ESRCH', code: 100_003, message: 'exited' } },
};

export interface FlowOptions {
  id: string;
  token?: string;
  remote?: string;
  port?: number;
  host?: string;
  pending?: { deadlineMs: number; default?: 'allow' | 'block' };
}

export function flowLine(at: number, f: FlowOptions): string {
  return JSON.stringify({
    type: 'flow',
    at,
    flow: {
      id: f.id, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
      local: { address: '192.168.1.42', port: 50_000 + at % 10_000 }, remote: { address: f.remote ?? '140.82.121.6', port: f.port ?? 443 },
      ...(f.host ? { remoteHost: { name: f.host, source: 'extension' } } : {}),
      ...(f.token ? { token: f.token, pid: ATTRIBUTIONS[f.token]?.pid ?? 1 } : {}),
      ...(f.pending ? { pending: f.pending } : {}),
    },
  });
}

export function bytesLine(at: number, id: string, rx: number, tx: number): string {
  return JSON.stringify({ type: 'bytes', at, counters: [{ id, rx, tx }] });
}

export function endLine(at: number, id: string, reason?: string): string {
  return JSON.stringify({ type: 'end', at, id, ...(reason ? { reason } : {}) });
}

export function scenarioText(events: string[], header: { lengthMs?: number; defaultAction?: 'allow' | 'block' } = {}): string {
  const head = {
    type: 'scenario', name: 'test', description: 'a test scenario',
    ...(header.lengthMs ? { lengthMs: header.lengthMs } : {}),
    hello: {
      extension: { name: 'flowtop-demo', version: '1' }, platform: 'demo', host: 'test-host',
      capabilities: ['verdicts', 'end-flows', 'rules', 'bytes', 'host-names'], tokenKind: 'replay',
      mode: { defaultAction: header.defaultAction ?? 'allow', timeoutMs: 20_000 },
    },
  };
  const attributions = Object.entries(ATTRIBUTIONS).map(([token, attribution]) => JSON.stringify({ type: 'attribution', token, attribution }));
  return [JSON.stringify(head), ...attributions, ...events].join('\n') + '\n';
}

/** Writes a scenario to a fresh temporary file and returns its path. */
export function scenarioFile(text: string, name = 'test.ndjson'): string {
  const path = join(mkdtempSync(join(tmpdir(), 'flowtop-demo-test-')), name);
  writeFileSync(path, text);
  return path;
}
