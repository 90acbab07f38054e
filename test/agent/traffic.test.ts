// Byte counters and ends of the flows the agent allowed: `bytes` from tcp_info as data moves, `end`
// when the program closes its socket, and UDP flows ending after the idle timeout.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, startServer, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type Bytes = Extract<ExtensionMessage, { type: 'bytes' }>;
type End = Extract<ExtensionMessage, { type: 'end' }>;

/** Connects, then sends `size` bytes each time a line arrives on stdin; exits when stdin closes. */
function sender(port: number): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const s = require('net').connect(${port}, '127.0.0.1');
    s.on('connect', () => console.log('connected'));
    s.on('error', (e) => console.log('error', e.code));
    require('readline').createInterface({ input: process.stdin }).on('line', (l) => s.write(Buffer.alloc(Number(l), 1), () => console.log('sent')));
    process.stdin.on('end', () => { s.end(); process.exit(0); });
  `];
}

function udpSender(port: number): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const s = require('dgram').createSocket('udp4');
    s.connect(${port}, '127.0.0.1', () => s.send(Buffer.from('hello'), () => console.log('sent')));
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
  `];
}

describe.skipIf(skip)('flowtop agent traffic counters and flow ends', () => {
  const PORT = 7600;
  const f = useAgent({
    servers: [PORT],
    setup: async (ns) => [await startServer(ns, PORT, 'udp')],
    flags: ['--queue-num', '7321', '--timeout', '20s', '--udp-idle', '1s'],
  });

  it('advertises bytes; counts the bytes of an allowed TCP flow; ends it when the program closes it', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type === 'hello' && hello.capabilities).toContain('bytes');
    const child = spawnIn(f.ns, f.cg, sender(PORT));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    await out.next((l) => l === 'connected');
    child.stdin!.write('1000\n');
    await out.next((l) => l === 'sent');
    const bytes = await client.waitFor<Bytes>('1000 bytes sent', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.id && c.tx === 1000));
    expect(bytes.counters.find((c) => c.id === flow.id)!.rx).toBe(0);
    child.stdin!.write('500\n');
    await client.waitFor('1500 bytes sent', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.id && c.tx === 1500));

    // a client that subscribes now sees the live flow, allowed, with its counters
    const late = new TestClient(f.agent.socket);
    await late.subscribe();
    await late.waitFor('the live flow in the snapshot', (m) => m.type === 'flow' && m.flow.id === flow.id && m.flow.verdict?.action === 'allow');
    await late.waitFor('its counters in the snapshot', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.id && c.tx === 1500));
    late.close();

    expect(client.messages.some((m) => m.type === 'end' && m.id === flow.id)).toBe(false);
    child.stdin!.end();
    const end = await client.waitFor<End>('the end of the flow', (m) => m.type === 'end' && m.id === flow.id);
    expect(end.reason).toMatch(/closed/);
    client.close();
  }, 30_000);

  it('a flow a rule allowed is counted too', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    client.send({ type: 'rule-add', rule: { action: 'allow', endpoint: { port: PORT }, protocol: 'tcp', duration: { kind: 'always' } } });
    await client.waitFor('the rule', (m) => m.type === 'rule-changed');
    const child = spawnIn(f.ns, f.cg, sender(PORT));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    await out.next((l) => l === 'connected');
    // decided in the queue worker, or on the main thread if the worker had not applied the rule yet
    const flow = await waitFor('the flow', () => client.flows((x) => x.pid === pid)[0]);
    const verdict = flow.verdict ?? await waitFor('its verdict', () => client.messages.flatMap((m) => (m.type === 'verdict' && m.id === flow.id ? [m.verdict] : []))[0]);
    expect(verdict.by).toBe('rule');
    child.stdin!.write('200\n');
    await client.waitFor('200 bytes sent', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.id && c.tx === 200));
    child.kill('SIGKILL');
    await client.waitFor('the end after the program died', (m) => m.type === 'end' && m.id === flow.id);
    client.close();
  }, 30_000);

  it('flows a rule allowed while no client watched are live for the client that subscribes later (those still open)', async () => {
    // the rule from the test above allows TCP to PORT; no client is subscribed from here on
    await waitFor('the agent to count no client', () => {
      try {
        return (JSON.parse(readFileSync(`${f.agent.socket}.status.json`, 'utf8')) as { clients: number }).clients === 0;
      } catch {
        return false;
      }
    }, 5000);
    const open = spawnIn(f.ns, f.cg, sender(PORT));
    const closed = spawnIn(f.ns, f.cg, sender(PORT));
    const openOut = lines(open);
    const closedOut = lines(closed);
    const openPid = Number((await openOut.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const closedPid = Number((await closedOut.next((l) => l.startsWith('pid'))).split(' ')[1]);
    await openOut.next((l) => l === 'connected');
    await closedOut.next((l) => l === 'connected');
    open.stdin!.write('300\n');
    await openOut.next((l) => l === 'sent');
    closed.stdin!.end();
    await new Promise((r) => closed.once('exit', r));
    // the worker posts such flows in batches at most 200 ms old
    await new Promise((r) => setTimeout(r, 400));
    const late = new TestClient(f.agent.socket);
    await late.subscribe();
    const flow = await late.waitFor<Extract<ExtensionMessage, { type: 'flow' }>>('the open flow in the snapshot', (m) => m.type === 'flow' && m.flow.pid === openPid);
    expect(flow.flow.verdict).toMatchObject({ action: 'allow', by: 'rule' });
    expect(flow.flow.token).toBeDefined();
    await late.waitFor('its counters', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.flow.id && c.tx === 300));
    expect(late.flows((x) => x.pid === closedPid)).toEqual([]);
    open.stdin!.end();
    await late.waitFor('its end', (m) => m.type === 'end' && m.id === flow.flow.id);
    late.close();
  }, 30_000);

  it('a UDP flow ends after the idle timeout while its socket stays open', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const child = spawnIn(f.ns, f.cg, udpSender(PORT));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending UDP flow', () => client.flows((f) => f.pid === pid && f.protocol === 'udp' && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    const allowedAt = Date.now();
    const end = await client.waitFor<End>('the idle end', (m) => m.type === 'end' && m.id === flow.id, 10_000);
    expect(Date.now() - allowedAt).toBeGreaterThanOrEqual(900);
    expect(end.reason).toMatch(/no traffic/);
    expect(child.exitCode).toBeNull(); // the program still holds its socket
    child.stdin!.end();
    client.close();
  }, 30_000);
});
