// The binary batch the queue threads use for flows allowed while no client watched: what the main
// thread decodes must be the flow the queue thread would have published, field for field.
import { describe, expect, it } from 'vitest';
import { UnwatchedBatchWriter, decodeUnwatched, type UnwatchedFlow } from '../../src/agent/unwatched-batch.js';

const v4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const token = Buffer.from(Array.from({ length: 24 }, (_, i) => i * 7));

function flowV4(packetId: number, extra: Partial<UnwatchedFlow> = {}): UnwatchedFlow {
  return {
    packetId, time: 1_700_000_000_123 + packetId, protocol: 'tcp', family: 'ipv4', direction: 'outbound',
    local: { address: v4('10.0.0.2'), port: 40000 + packetId }, remote: { address: v4('93.184.216.34'), port: 443 },
    ruleId: 'rallow', ...extra,
  };
}

describe('unwatched flow batches', () => {
  it('decode to the flows and verdicts the queue thread would have built', () => {
    const w = new UnwatchedBatchWriter('q7-abc-', 8);
    w.add(flowV4(1, { token, pid: 4242, uid: 1000 }));
    w.add({
      packetId: 0xfffffff0, time: 5.5, protocol: 'udp', family: 'ipv6', direction: 'inbound',
      local: { address: Buffer.from('fe800000000000000000000000000001', 'hex'), port: 53 },
      remote: { address: Buffer.from('20010db8000000000000000000000042', 'hex'), port: 5353 },
      ruleId: 'rdns', uid: 0, ownerError: 'no process holds socket inode 77',
    });
    w.add(flowV4(3, { token: Buffer.from('short'), pid: 1 }));
    const batch = w.take();
    expect(batch.count).toBe(3);
    expect(w.length).toBe(0);
    expect(decodeUnwatched(batch)).toEqual([
      {
        flow: {
          id: 'q7-abc-1', time: 1_700_000_000_124, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
          local: { address: '10.0.0.2', port: 40001 }, remote: { address: '93.184.216.34', port: 443 },
          token: token.toString('base64'), pid: 4242, uid: 1000,
        },
        verdict: { action: 'allow', by: 'rule', ruleId: 'rallow' },
      },
      {
        flow: {
          id: `q7-abc-${0xfffffff0}`, time: 5.5, direction: 'inbound', protocol: 'udp', family: 'ipv6',
          local: { address: 'fe80::1', port: 53 }, remote: { address: '2001:db8::42', port: 5353 },
          uid: 0, ownerError: 'no process holds socket inode 77',
        },
        verdict: { action: 'allow', by: 'rule', ruleId: 'rdns' },
      },
      {
        flow: {
          id: 'q7-abc-3', time: 1_700_000_000_126, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
          local: { address: '10.0.0.2', port: 40003 }, remote: { address: '93.184.216.34', port: 443 },
          token: Buffer.from('short').toString('base64'), pid: 1,
        },
        verdict: { action: 'allow', by: 'rule', ruleId: 'rallow' },
      },
    ]);
  });

  it('with a test of open sockets, builds only the flows it keeps', () => {
    const w = new UnwatchedBatchWriter('q1-', 8);
    for (let i = 1; i <= 5; i++) w.add(flowV4(i, { token }));
    const asked: string[] = [];
    const kept = decodeUnwatched(w.take(), (protocol, local, remote) => {
      asked.push(`${protocol} ${local.address}:${local.port} ${remote.address}:${remote.port}`);
      return local.port % 2 === 0;
    });
    expect(asked[0]).toBe('tcp 10.0.0.2:40001 93.184.216.34:443');
    expect(asked).toHaveLength(5);
    expect(kept.map((u) => u.flow.id)).toEqual(['q1-2', 'q1-4']);
    expect(kept[0]!.flow.token).toBe(token.toString('base64'));
  });

  it('says when it is full, and a new batch starts empty after take', () => {
    const w = new UnwatchedBatchWriter('q1-', 2);
    expect(w.add(flowV4(1))).toBe(true);
    expect(w.add(flowV4(2))).toBe(true);
    expect(w.full).toBe(true);
    expect(w.add(flowV4(3))).toBe(false);
    expect(decodeUnwatched(w.take()).map((u) => u.flow.id)).toEqual(['q1-1', 'q1-2']);
    expect(w.add(flowV4(3))).toBe(true);
    expect(decodeUnwatched(w.take()).map((u) => u.flow.id)).toEqual(['q1-3']);
  });

  it('a batch whose buffer holds fewer records than its count yields only those', () => {
    const w = new UnwatchedBatchWriter('q1-', 4);
    w.add(flowV4(1));
    w.add(flowV4(2));
    const batch = w.take();
    expect(decodeUnwatched({ ...batch, count: 4 }).map((u) => u.flow.id)).toEqual(['q1-1', 'q1-2']);
    expect(decodeUnwatched({ ...batch, bytes: batch.bytes.subarray(0, 100) }).map((u) => u.flow.id)).toEqual(['q1-1']);
  });
});
