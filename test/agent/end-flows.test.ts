// `end-flows`: a block verdict on an allowed, live TCP flow destroys its socket (the program fails at
// once) and ends the flow with the reason; the server's listener is untouched.
import { describe, expect, it } from 'vitest';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient, connectScript, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type End = Extract<ExtensionMessage, { type: 'end' }>;

/** Connects, says so, and reports the error its socket later gets. */
function longLived(port: number): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const s = require('net').connect(${port}, '127.0.0.1');
    s.on('connect', () => { console.log('connected'); setInterval(() => s.write('x'), 50); });
    s.on('error', (e) => console.log('error', e.code));
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
  `];
}

describe.skipIf(skip)('flowtop agent ends live flows', () => {
  const PORT = 7800;
  const f = useAgent({ servers: [PORT], flags: ['--queue-num', '7341', '--timeout', '20s'] });

  it('block on an allowed, live TCP flow aborts its connection and ends the flow; the listener keeps serving', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type === 'hello' && hello.capabilities).toContain('end-flows');
    const child = spawnIn(f.ns, f.cg, longLived(PORT));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    await out.next((l) => l === 'connected');
    // a second allow on the live flow is refused: it is not pending
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once', ref: 'again' });
    await client.waitFor('not-pending', (m) => m.type === 'error' && m.code === 'not-pending' && m.ref === 'again');

    client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'once' });
    expect(await out.next((l) => l.startsWith('error'))).toBe('error ECONNABORTED');
    const end = await client.waitFor<End>('the end', (m) => m.type === 'end' && m.id === flow.id);
    expect(end.reason).toMatch(/blocked while live/);
    expect(client.messages.some((m) => m.type === 'verdict' && m.id === flow.id && m.verdict.action === 'block' && m.verdict.by === 'user')).toBe(true);
    child.stdin!.end();

    // the server's listener is alive: a new connection, once allowed, connects
    const next = spawnIn(f.ns, f.cg, connectScript(PORT));
    const nextOut = lines(next);
    const nextPid = Number((await nextOut.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const nextFlow = await waitFor('the next pending flow', () => client.flows((f) => f.pid === nextPid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: nextFlow.id, action: 'allow', remember: 'once' });
    expect(await nextOut.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    next.stdin!.end();
    // an ended flow is no longer known
    client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'once', ref: 'gone' });
    await client.waitFor('unknown-flow', (m) => m.type === 'error' && m.code === 'unknown-flow' && m.ref === 'gone');
    client.close();
  }, 30_000);

  it('block on an allowed, live UDP flow stops its datagrams; the program keeps its socket', async () => {
    const UDP_PORT = PORT + 1;
    // counts what arrives, one line per datagram
    const server = spawnIn(f.ns, undefined, [process.execPath, '-e', `
      const s = require('dgram').createSocket('udp4');
      s.on('message', () => console.log('got'));
      s.bind(${UDP_PORT}, '127.0.0.1', () => console.log('ready'));
    `]);
    const serverOut = lines(server);
    await serverOut.next((l) => l === 'ready');
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const child = spawnIn(f.ns, f.cg, [process.execPath, '-e', `
      console.log('pid', process.pid);
      const s = require('dgram').createSocket('udp4');
      s.connect(${UDP_PORT}, '127.0.0.1', () => setInterval(() => s.send('x', (e) => e && console.log('error', e.code)), 20));
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
    `]);
    try {
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the pending UDP flow', () => client.flows((x) => x.pid === pid && x.protocol === 'udp' && !!x.pending)[0]);
      client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
      await waitFor('datagrams at the server', () => serverOut.all.filter((l) => l === 'got').length >= 5 || undefined);

      client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'once' });
      const end = await client.waitFor<End>('the end', (m) => m.type === 'end' && m.id === flow.id);
      expect(end.reason).toMatch(/blocked while live: its next datagrams are dropped/);
      // the sender goes on sending every 20 ms: nothing more may reach the server
      await new Promise((r) => setTimeout(r, 100)); // a datagram already past the filter may still land
      const landed = serverOut.all.filter((l) => l === 'got').length;
      await new Promise((r) => setTimeout(r, 600));
      expect(serverOut.all.filter((l) => l === 'got').length).toBe(landed);
      expect(child.exitCode).toBeNull();
      // they came back to the queue as new flows and were dropped by the remembered block, without a prompt
      expect(client.flows((x) => x.pid === pid && !!x.pending && x.id !== flow.id)).toEqual([]);
    } finally {
      child.stdin!.end();
      server.kill();
      client.close();
    }
  }, 30_000);
});
