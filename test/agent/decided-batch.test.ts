// The binary batch the queue threads hand flows a rule decided over in: what the main thread decodes
// must be the flow and verdict the queue thread would have published, field for field; a malformed
// batch or record is skipped, never thrown on.
import { describe, expect, it } from 'vitest';
import { UnwatchedFlows } from '../../src/agent/unwatched-flows.js';
import { DecidedBatchWriter, type DecidedBatch, type DecidedFlow } from '../../src/agent/decided-batch.js';
import { DecidedRecords, decodeDecided } from '../../src/agent/decided-records.js';

const v4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const token = Buffer.from(Array.from({ length: 24 }, (_, i) => i * 7));

function flowV4(packetId: number, extra: Partial<DecidedFlow> = {}): DecidedFlow {
  return {
    packetId, time: 1_700_000_000_123 + packetId, protocol: 'tcp', family: 'ipv4', direction: 'outbound',
    local: { address: v4('10.0.0.2'), port: 40000 + packetId }, remote: { address: v4('93.184.216.34'), port: 443 },
    ruleId: 'rallow', ...extra,
  };
}

describe('batches of flows decided by rule', () => {
  it('decode to the flows and verdicts the queue thread would have built', () => {
    const w = new DecidedBatchWriter('q7-abc-', 8);
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
    expect(decodeDecided(batch)).toEqual([
      {
        id: 'q7-abc-1', time: 1_700_000_000_124, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
        local: { address: '10.0.0.2', port: 40001 }, remote: { address: '93.184.216.34', port: 443 },
        token: token.toString('base64'), pid: 4242, uid: 1000,
        verdict: { action: 'allow', by: 'rule', ruleId: 'rallow' },
      },
      {
        id: `q7-abc-${0xfffffff0}`, time: 5.5, direction: 'inbound', protocol: 'udp', family: 'ipv6',
        local: { address: 'fe80::1', port: 53 }, remote: { address: '2001:db8::42', port: 5353 },
        uid: 0, ownerError: 'no process holds socket inode 77',
        verdict: { action: 'allow', by: 'rule', ruleId: 'rdns' },
      },
      {
        id: 'q7-abc-3', time: 1_700_000_000_126, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
        local: { address: '10.0.0.2', port: 40003 }, remote: { address: '93.184.216.34', port: 443 },
        token: Buffer.from('short').toString('base64'), pid: 1,
        verdict: { action: 'allow', by: 'rule', ruleId: 'rallow' },
      },
    ]);
  });

  it('with a test of open sockets, builds only the flows it keeps', () => {
    const w = new DecidedBatchWriter('q1-', 8);
    for (let i = 1; i <= 5; i++) w.add(flowV4(i, { token }));
    const asked: string[] = [];
    const kept = decodeDecided(w.take(), {
      keep: (protocol, local, remote) => {
        asked.push(`${protocol} ${local.address}:${local.port} ${remote.address}:${remote.port}`);
        return local.port % 2 === 0;
      },
    });
    expect(asked[0]).toBe('tcp 10.0.0.2:40001 93.184.216.34:443');
    expect(asked).toHaveLength(5);
    expect(kept.map((u) => u.id)).toEqual(['q1-2', 'q1-4']);
    expect(kept[0]!.token).toBe(token.toString('base64'));
  });

  it('says when it is full, and a new batch starts empty after take', () => {
    const w = new DecidedBatchWriter('q1-', 2);
    expect(w.add(flowV4(1))).toBe(true);
    expect(w.add(flowV4(2))).toBe(true);
    expect(w.full).toBe(true);
    expect(w.add(flowV4(3))).toBe(false);
    expect(decodeDecided(w.take()).map((u) => u.id)).toEqual(['q1-1', 'q1-2']);
    expect(w.add(flowV4(3))).toBe(true);
    expect(decodeDecided(w.take()).map((u) => u.id)).toEqual(['q1-3']);
  });

  it('a batch whose buffer holds fewer records than its count yields only those', () => {
    const w = new DecidedBatchWriter('q1-', 4);
    w.add(flowV4(1));
    w.add(flowV4(2));
    const batch = w.take();
    expect(decodeDecided({ ...batch, count: 4 }).map((u) => u.id)).toEqual(['q1-1', 'q1-2']);
    expect(decodeDecided({ ...batch, bytes: batch.bytes.subarray(0, 100) }).map((u) => u.id)).toEqual(['q1-1']);
  });
  it('carry a blocked flow\'s block mode, the identity the rules matched and the owner error', () => {
    const w = new DecidedBatchWriter('q2-', 8);
    const identity = { kind: 'sha256' as const, value: 'ab'.repeat(32), path: '/usr/bin/curl' };
    w.add(flowV4(1, { token, pid: 7, ruleId: 'rreject', block: 'reject', identity }));
    w.add(flowV4(2, { token, pid: 7, ruleId: 'rdrop', block: 'drop', identity }));
    w.add(flowV4(3, { ruleId: 'rallow', ownerError: 'socket gone', identity: { kind: 'package', value: '/usr/bin/wget', package: 'wget' } }));
    const batch = w.take();
    expect(batch.identities).toHaveLength(2); // one entry per identity, however many flows carry it
    const got = decodeDecided(batch);
    expect(got.map((u) => u.verdict)).toEqual([
      { action: 'block', by: 'rule', ruleId: 'rreject', blockMode: 'reject' },
      { action: 'block', by: 'rule', ruleId: 'rdrop', blockMode: 'drop' },
      { action: 'allow', by: 'rule', ruleId: 'rallow' },
    ]);
    expect(got[0]!.identity).toEqual(identity);
    expect(got[1]!.identity).toEqual(identity);
    expect(got[1]!.identity).not.toBe(got[0]!.identity); // each flow's own, to update alone
    expect(got[2]!).toMatchObject({ identity: { kind: 'package', value: '/usr/bin/wget', package: 'wget' }, ownerError: 'socket gone' });
    expect(got[2]!.token).toBeUndefined();
    expect(decodeDecided(batch, { only: 'allow' }).map((u) => u.id)).toEqual(['q2-3']);
    expect(decodeDecided(batch, { only: 'block' }).map((u) => u.id)).toEqual(['q2-1', 'q2-2']);
  });

  it('a malformed batch yields nothing and a malformed record is skipped, without a throw', () => {
    const w = new DecidedBatchWriter('q1-', 4);
    w.add(flowV4(1, { identity: { kind: 'sha256', value: 'x' } }));
    w.add(flowV4(2));
    w.add(flowV4(3));
    const batch = w.take();
    for (const bad of [null, {}, { ...batch, bytes: 'no' }, { ...batch, count: -1 }, { ...batch, count: 1.5 }, { ...batch, ruleIds: undefined }, { ...batch, identities: 3 }]) {
      expect(decodeDecided(bad as unknown as DecidedBatch)).toEqual([]);
    }
    const bytes = batch.bytes.slice();
    bytes[88 + 5] = 5; // record 2: an unknown family
    new DataView(bytes.buffer).setFloat64(2 * 88 + 8, Number.NaN, true); // record 3: no time
    const odd: DecidedBatch = { ...batch, bytes, ruleIds: [], identities: [{ kind: 'nonsense', value: 1 } as never], extras: [[0, { ownerError: 5 }] as never, 'x' as never] };
    const got = decodeDecided(odd);
    expect(got.map((u) => u.id)).toEqual(['q1-1']);
    expect(got[0]!.verdict).toEqual({ action: 'allow', by: 'rule' }); // its rule index points nowhere
    expect(got[0]!.identity).toBeUndefined();
    expect(got[0]!.ownerError).toBeUndefined();
  });

  it('each record has its own token and remote address, however they repeat from record to record and batch to batch', () => {
    const other = Buffer.from(token).reverse();
    const w = new DecidedBatchWriter('q3-', 8);
    w.add(flowV4(1, { token }));
    w.add(flowV4(2, { token }));
    w.add(flowV4(3, { token: other, remote: { address: v4('192.0.2.7'), port: 80 } }));
    w.add(flowV4(4, { token, family: 'ipv6', remote: { address: Buffer.from('20010db8000000000000000000000007', 'hex'), port: 80 } }));
    const batches = [w.take()];
    w.add(flowV4(5, { token: other }));
    batches.push(w.take());
    // as flow objects, and read field by field (the remote address as the ended-flow path reads it)
    expect(batches.flatMap((b) => decodeDecided(b)).map((f) => [f.token, f.remote.address])).toEqual(batches.flatMap((b) => {
      const r = new DecidedRecords(b);
      return Array.from({ length: r.count }, (_, i) => [r.token(i), r.remoteAddress(i)]);
    }));
    expect(batches.flatMap((b) => decodeDecided(b)).map((f) => [f.token, f.remote.address])).toEqual([
      [token.toString('base64'), '93.184.216.34'],
      [token.toString('base64'), '93.184.216.34'],
      [other.toString('base64'), '192.0.2.7'],
      [token.toString('base64'), '2001:db8::7'],
      [other.toString('base64'), '93.184.216.34'],
    ]);
  });

  it('refuses a capacity its 16-bit indexes cannot address', () => {
    expect(() => new DecidedBatchWriter('q1-', 0x10000)).toThrow(RangeError);
    expect(() => new DecidedBatchWriter('q1-', 0)).toThrow(RangeError);
  });
  it('kept for a later client, a batch shows it only the allowed flows (one made while someone watched has blocked ones too)', () => {
    const w = new DecidedBatchWriter('q1-', 4);
    w.add(flowV4(1, { block: 'drop' }));
    w.add(flowV4(2));
    w.add(flowV4(3, { block: 'reject' }));
    const kept = new UnwatchedFlows(() => undefined);
    kept.add(w.take());
    expect(kept.take().map((x) => [x.id, x.verdict?.action])).toEqual([['q1-2', 'allow']]);
  });
});
