// Builders for protocol messages and attributions used by the state and UI tests.
import type { Attribution } from '../../src/attribution/types.js';
import type { Capability, ExtensionMessage, FlowRecord, HelloMessage } from '../../src/protocol/messages.js';
import type { SourceEvent } from '../../src/source/types.js';

export function token(n: number): string {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(n, 0);
  b.writeUInt32LE(n * 7 + 1, 8);
  return b.toString('base64');
}

export function hello(capabilities: Capability[] = ['verdicts', 'end-flows', 'rules', 'bytes'], extra: Partial<HelloMessage> = {}): HelloMessage {
  return {
    type: 'hello',
    protocol: 1,
    extension: { name: 'test-ext', version: '1.0' },
    platform: 'demo',
    host: 'box',
    capabilities,
    tokenKind: 'replay',
    ...extra,
  };
}

let seq = 0;
export function flow(over: Partial<FlowRecord> = {}): FlowRecord {
  seq++;
  return {
    id: `f${seq}`,
    time: 1_000_000 + seq,
    direction: 'outbound',
    protocol: 'tcp',
    family: 'ipv4',
    local: { address: '10.0.0.2', port: 40000 + (seq % 20000) },
    remote: { address: '93.184.216.34', port: 443 },
    ...over,
  };
}

export function ev(message: ExtensionMessage, source = 'ext'): SourceEvent {
  return { source, message };
}

export function secure(name: string, extra: Partial<Attribution> = {}): Attribution {
  return {
    trust: 'secure',
    pid: 100,
    uid: 1000,
    user: 'alice',
    name,
    path: `/usr/bin/${name}`,
    identity: `package:${name}:/usr/bin/${name}`,
    signer: { kind: 'package', label: `package ${name}`, package: name },
    sha256: 'ab'.repeat(32),
    ...extra,
  };
}

export function insecure(name: string, extra: Partial<Attribution> = {}): Attribution {
  return {
    trust: 'insecure',
    pid: 200,
    uid: 0,
    user: 'root',
    name,
    path: `/usr/sbin/${name}`,
    reason: { call: 'secure lookup', errno: 'EPERM', code: 100001, message: 'name comes from the PID only and can be spoofed by PID reuse' },
    ...extra,
  };
}
