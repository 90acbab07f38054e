// An allowed inbound connection waits in its listener's accept queue with no owner (inode 0) until
// the program accepts it: the flow must not end meanwhile, and its bytes count once it is accepted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { Netns, TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type End = Extract<ExtensionMessage, { type: 'end' }>;
const PORT = 7950;

describe.skipIf(skip)('flowtop agent: inbound flow counters', () => {
  const f = useAgent({ flags: ['--queue-num', '7381', '--timeout', '20s', '--inbound'] });
  let remote: Netns;
  const link = `fti${process.pid % 100000}`;
  beforeAll(() => {
    remote = new Netns();
    execFileSync('ip', ['link', 'add', `${link}a`, 'netns', f.ns.name, 'type', 'veth', 'peer', 'name', `${link}b`, 'netns', remote.name]);
    f.ns.sh(`ip addr add 10.232.0.1/24 dev ${link}a && ip link set ${link}a up`);
    remote.sh(`ip addr add 10.232.0.2/24 dev ${link}b && ip link set ${link}b up`);
  });
  afterAll(() => remote?.delete());

  it('keeps the flow while the listener has not accepted it, then counts its bytes and sees its end', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    // accepts only when told (a line on stdin), then reads until the peer closes
    const listener = spawnIn(f.ns, f.cg, ['python3', '-c', `
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.232.0.1', ${PORT})); s.listen(8)
print('ready', flush=True)
sys.stdin.readline()
c, _ = s.accept()
n = 0
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d)
print('read', n, flush=True)
`]);
    const lout = lines(listener);
    await lout.next((l) => l === 'ready');
    const sender = spawn(remote.enter[0]!, [...remote.enter.slice(1), process.execPath, '-e', `
      const s = require('net').connect(${PORT}, '10.232.0.1');
      s.on('connect', () => s.write(Buffer.alloc(700), () => console.log('sent')));
      s.on('error', (e) => console.log('error', e.code));
      process.stdin.on('data', () => { s.end(); });
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    const sout = lines(sender);
    const flow = await waitFor('the inbound flow', () => client.flows((x) => x.direction === 'inbound' && x.local.port === PORT && !!x.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    await sout.next((l) => l === 'sent');
    // two polls (1 s apart) see the connection with no owner yet: the flow goes on
    await new Promise((r) => setTimeout(r, 2500));
    expect(client.messages.some((m) => m.type === 'end' && m.id === flow.id)).toBe(false);
    listener.stdin!.write('accept\n');
    await client.waitFor('700 bytes received', (m) => m.type === 'bytes' && m.counters.some((c) => c.id === flow.id && c.rx === 700));
    sender.stdin!.write('close\n');
    expect(await lout.next((l) => l.startsWith('read'))).toBe('read 700');
    const end = await client.waitFor<End>('the end', (m) => m.type === 'end' && m.id === flow.id);
    expect(end.reason).toMatch(/closed/);
    sender.kill();
    client.close();
  }, 40_000);
});
