// Host names from DNS answers: the agent queues answers from port 53 (its own rule, with bypass),
// accepts them at once, and names later flows to the answered addresses. A DNS responder runs in the
// test's namespace; the lookups are made there by real programs.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { dnsMessagesOf } from '../../src/agent/dns-packet.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

/** Answers every query: `<x>.cname.test` with a CNAME to edge.cdn.test then A 127.0.0.6, anything
 *  else with A 127.0.0.5. Over UDP and TCP on 127.0.0.1:53. */
const RESPONDER = `
const dgram = require('dgram'), net = require('net');
function name(labels) { const parts = []; for (const l of labels.split('.')) { parts.push(Buffer.from([l.length]), Buffer.from(l)); } parts.push(Buffer.from([0])); return Buffer.concat(parts); }
function answer(q) {
  let at = 12; const labels = [];
  while (q[at] !== 0) { labels.push(q.subarray(at + 1, at + 1 + q[at]).toString()); at += q[at] + 1; }
  const question = q.subarray(12, at + 5);
  const asked = labels.join('.');
  const rr = (owner, type, data) => { const h = Buffer.alloc(10); h.writeUInt16BE(type, 0); h.writeUInt16BE(1, 2); h.writeUInt32BE(300, 4); h.writeUInt16BE(data.length, 8); return Buffer.concat([owner, h, data]); };
  const answers = asked.endsWith('.cname.test')
    ? [rr(Buffer.from([0xc0, 12]), 5, name('edge.cdn.test')), rr(name('edge.cdn.test'), 1, Buffer.from([127, 0, 0, 6]))]
    : [rr(Buffer.from([0xc0, 12]), 1, Buffer.from([127, 0, 0, 5]))];
  const head = Buffer.alloc(12); q.copy(head, 0, 0, 2); head.writeUInt16BE(0x8180, 2); head.writeUInt16BE(1, 4); head.writeUInt16BE(answers.length, 6);
  return Buffer.concat([head, question, ...answers]);
}
const u = dgram.createSocket('udp4'); u.on('message', (q, r) => u.send(answer(q), r.port, r.address));
u.bind(53, '127.0.0.1', () => {
  net.createServer((c) => { c.on('error', () => {}); c.once('data', (d) => { const a = answer(d.subarray(2)); const len = Buffer.alloc(2); len.writeUInt16BE(a.length); c.end(Buffer.concat([len, a])); }); })
    .listen(53, '127.0.0.1', () => console.log('ready'));
});
`;

/** Looks `host` up (UDP, or TCP with `tcp`), prints the address, then connects to it on `port`. */
function lookupAndConnect(host: string, port: number, tcp = false): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const net = require('net');
    const go = (address) => { console.log('address', address); const s = net.connect(${port}, address); s.on('connect', () => console.log('connected')); s.on('error', (e) => console.log('error', e.code)); };
    if (${tcp}) {
      const labels = ${JSON.stringify(host)}.split('.');
      const q = Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
      const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
      const c = net.connect(53, '127.0.0.1', () => c.write(Buffer.concat([len, q])));
      const parts = []; c.on('data', (d) => parts.push(d)); c.on('end', () => { const a = Buffer.concat(parts); go(a.subarray(a.length - 4).join('.')); });
    } else {
      const r = new (require('dns').promises.Resolver)(); r.setServers(['127.0.0.1']);
      r.resolve4(${JSON.stringify(host)}).then((a) => go(a[0]), (e) => console.log('error', e.code));
    }
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
  `];
}

describe('DNS answers in queued packets', () => {
  it('reads UDP and TCP answers; refuses truncated and fragmented packets', () => {
    const dns = Buffer.from('1234818000010001000000000473686f70076578616d706c650000010001c00c000100010000012c00047f000005', 'hex');
    const udp = Buffer.alloc(8); udp.writeUInt16BE(53, 0); udp.writeUInt16BE(40000, 2); udp.writeUInt16BE(8 + dns.length, 4);
    const ip = Buffer.alloc(20); ip[0] = 0x45; ip.writeUInt16BE(20 + 8 + dns.length, 2); ip[9] = 17;
    const packet = Buffer.concat([ip, udp, dns]);
    const [m] = dnsMessagesOf(packet);
    expect(m?.answers).toContainEqual(expect.objectContaining({ type: 'A', name: 'shop.example', address: '127.0.0.5' }));
    for (let cut = 0; cut < packet.length; cut++) expect(() => dnsMessagesOf(packet.subarray(0, cut))).not.toThrow();
    expect(dnsMessagesOf(packet.subarray(0, packet.length - 3))).toEqual([]);
    const fragment = Buffer.from(packet); fragment.writeUInt16BE(0x2000, 6); // more fragments follow
    expect(dnsMessagesOf(fragment)).toEqual([]);
    const len = Buffer.alloc(2); len.writeUInt16BE(dns.length);
    const tcp = Buffer.alloc(20); tcp.writeUInt16BE(53, 0); tcp[12] = 5 << 4;
    const tip = Buffer.from(ip); tip[9] = 6; tip.writeUInt16BE(20 + 20 + 2 + dns.length, 2);
    expect(dnsMessagesOf(Buffer.concat([tip, tcp, len, dns]))).toHaveLength(1);
  });
});

const skip = skipUnlessCapable();

describe.skipIf(skip)('flowtop agent host names from DNS answers', () => {
  const PORT = 7700;
  const f = useAgent({
    setup: async (ns) => {
      const responder = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', RESPONDER], { stdio: ['ignore', 'pipe', 'inherit'] });
      await lines(responder).next((l) => l === 'ready');
      const server = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e',
        `require('net').createServer((c) => c.on('error', () => {})).listen(${PORT}, '0.0.0.0', () => console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await lines(server).next((l) => l === 'ready');
      return [responder, server];
    },
    flags: ['--queue-num', '7331', '--timeout', '20s'],
  });

  async function nameOfConnection(client: TestClient, host: string, tcp = false): Promise<{ address: string; remoteHost: unknown }> {
    const child = spawnIn(f.ns, f.cg, lookupAndConnect(host, PORT, tcp));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const address = (await out.next((l) => l.startsWith('address') || l.startsWith('error'))).split(' ')[1]!;
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && f.remote.port === PORT && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    await out.next((l) => l === 'connected');
    child.stdin!.end();
    return { address, remoteHost: flow.remoteHost };
  }

  it('names a connection to an address a DNS answer gave (UDP, and the head of a CNAME chain)', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type === 'hello' && hello.capabilities).toContain('host-names');
    // the lookups themselves are new flows: let port 53 through
    for (const protocol of ['udp', 'tcp'] as const) {
      client.send({ type: 'rule-add', rule: { action: 'allow', endpoint: { port: 53 }, protocol, duration: { kind: 'always' } } });
    }
    await waitFor('the rules', () => client.messages.filter((m) => m.type === 'rule-changed').length === 2 || undefined);

    const plain = await nameOfConnection(client, 'shop.example.test');
    expect(plain.address).toBe('127.0.0.5');
    expect(plain.remoteHost).toEqual({ name: 'shop.example.test', source: 'dns' });
    const chained = await nameOfConnection(client, 'www.cname.test');
    expect(chained.address).toBe('127.0.0.6');
    expect(chained.remoteHost).toEqual({ name: 'www.cname.test', source: 'dns' });
    client.close();
  }, 30_000);

  it('reads answers over TCP too', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const viaTcp = await nameOfConnection(client, 'tcp.example.test', true);
    expect(viaTcp.address).toBe('127.0.0.5');
    expect(viaTcp.remoteHost).toEqual({ name: 'tcp.example.test', source: 'dns' });
    client.close();
  }, 30_000);

  it('a rule naming the host decides over a less specific one', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    // the host rule first: the worker never holds the port rule without it
    client.send({ type: 'rule-add', ref: 'host', rule: { action: 'block', blockMode: 'reject', endpoint: { host: 'blocked.example.test', port: PORT }, protocol: 'tcp', duration: { kind: 'always' } } });
    await client.waitFor('the host rule', (m) => m.type === 'rule-changed');
    client.send({ type: 'rule-add', ref: 'port', rule: { action: 'allow', endpoint: { port: PORT }, protocol: 'tcp', duration: { kind: 'always' } } });
    const added = await waitFor('both rules', () => {
      const rules = client.messages.flatMap((m) => (m.type === 'rule-changed' ? [m.rule] : []));
      return rules.length === 2 ? rules : undefined;
    });
    const hostRule = added.find((r) => r.endpoint?.host)!;
    for (const [host, action] of [['blocked.example.test', 'block'], ['open.example.test', 'allow']] as const) {
      const child = spawnIn(f.ns, f.cg, lookupAndConnect(host, PORT));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const result = await out.next((l) => l === 'connected' || (l.startsWith('error') && !l.includes('ENOTFOUND')));
      child.stdin!.end();
      const flow = await waitFor('the flow', () => client.flows((x) => x.pid === pid && x.remote.port === PORT)[0]);
      expect(flow.remoteHost?.name).toBe(host);
      const verdict = flow.verdict ?? await waitFor('its verdict', () => client.messages.flatMap((m) => (m.type === 'verdict' && m.id === flow.id ? [m.verdict] : []))[0]);
      expect(verdict).toMatchObject({ action, by: 'rule', ...(action === 'block' ? { ruleId: hostRule.id } : {}) });
      expect(result).toMatch(action === 'block' ? /^error/ : /^connected/);
    }
    client.close();
  }, 30_000);
});
