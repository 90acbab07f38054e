// Who connected, under pressure: the owner comes from the connect-time BPF record, confirmed by pidfd,
// so bursts of short-lived processes, fd-heavy clients, forked children and exited UDP senders are
// each attributed to the process that really sent the packet (exited UDP senders: udp-exited.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();

describe.skipIf(skip)('flowtop agent attribution', () => {
  const PORT = 7200;
  // TCP to the test server is allowed by rule (decided in the agent, no round trip); the rest waits
  const f = useAgent({
    servers: [PORT],
    flags: ['--queue-num', '7303', '--timeout', '20s'],
    rulesFile: {
      policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false },
      rules: [{ id: 'rtest', action: 'allow', protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true }],
    },
  });
  let client: TestClient;

  beforeAll(async () => {
    client = new TestClient(f.agent.socket);
    await client.subscribe();
  });

  afterAll(() => client?.close());

  it('500 short-lived processes started in a burst: each connection attributed to its own PID', async () => {
    const child = spawnIn(f.ns, f.cg, ['bash', '-c', `for i in $(seq 500); do bash -c 'echo $$; exec 3<>/dev/tcp/127.0.0.1/${PORT}' & done; wait; echo done`]);
    const out = lines(child);
    await out.next((l) => l === 'done', 60_000);
    const pids = new Set(out.all.filter((l) => /^\d+$/.test(l)).map(Number));
    expect(pids.size).toBe(500);
    const flows = await waitFor('500 flows', () => {
      const f = client.flows((x) => x.remote.port === PORT && pids.has(x.pid ?? -1));
      return f.length >= 500 ? f : undefined;
    }, 20_000);
    const attributed = new Set(flows.map((f) => f.pid));
    expect(attributed.size).toBe(500);
    for (const f of flows) {
      expect(f.token, `flow of pid ${f.pid}: ${f.ownerError}`).toBeDefined();
      expect(decodeLinuxToken(Buffer.from(f.token!, 'base64'))?.pid).toBe(f.pid);
      expect(f.verdict).toMatchObject({ action: 'allow', by: 'rule' });
    }
  }, 90_000);

  it('a client holding 10,000 descriptors is attributed correctly', async () => {
    const child = spawnIn(f.ns, f.cg, ['sh', '-c', 'ulimit -n 20000 && exec "$0" "$@"', process.execPath, '-e', `
      const fs = require('fs'); for (let i = 0; i < 10000; i++) fs.openSync('/dev/null', 'r');
      console.log('pid', process.pid);
      const s = require('net').connect(${PORT}, '127.0.0.1', () => console.log('connected'));
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
    `]);
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    await out.next((l) => l === 'connected');
    const flow = await waitFor('the flow', () => client.flows((f) => f.pid === pid)[0]);
    expect(decodeLinuxToken(Buffer.from(flow.token!, 'base64'))?.pid).toBe(pid);
    child.stdin?.end();
  });

  it('a socket created by the parent and connected by a forked child is attributed to the child', async () => {
    const child = spawnIn(f.ns, f.cg, ['python3', '-c', `
import os, socket
s = socket.socket()
print('parent', os.getpid(), flush=True)
pid = os.fork()
if pid == 0:
    print('child', os.getpid(), flush=True)
    s.connect(('127.0.0.1', ${PORT}))
    print('connected', flush=True)
    os._exit(0)
os.waitpid(pid, 0)
`]);
    const out = lines(child);
    const parent = Number((await out.next((l) => l.startsWith('parent'))).split(' ')[1]);
    const forked = Number((await out.next((l) => l.startsWith('child'))).split(' ')[1]);
    await out.next((l) => l === 'connected');
    const flow = await waitFor('the flow', () => client.flows((f) => f.pid === forked || f.pid === parent)[0]);
    expect(flow.pid).toBe(forked);
  });

  it('a process that execs another program under the same PID: each connection names the code that made it', async () => {
    // bash connects, then becomes python3 (same PID, same start time), which connects again: the second
    // token must carry python3's executable, not bash's. Eight connections each, so that every queue
    // worker (the flows are spread by tuple hash) has seen bash before python3 connects.
    const child = spawnIn(f.ns, f.cg, ['bash', '-c', `echo pid $$; for i in 1 2 3 4 5 6 7 8; do exec 3<>/dev/tcp/127.0.0.1/${PORT}; done; exec python3 -c "
import socket, sys
held = [socket.create_connection(('127.0.0.1', ${PORT})) for _ in range(8)]
print('connected', flush=True)
sys.stdin.read()
"`]);
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    await out.next((l) => l === 'connected');
    const flows = await waitFor('16 flows', () => {
      const f = client.flows((x) => x.pid === pid);
      return f.length >= 16 ? f : undefined;
    });
    flows.sort((a, b) => a.time - b.time);
    const tokens = flows.map((f) => decodeLinuxToken(Buffer.from(f.token!, 'base64'))!);
    const bashTag = tokens[0]!.execTag;
    expect(tokens.slice(0, 8).every((t) => t.execTag === bashTag)).toBe(true);
    expect(tokens.slice(8).every((t) => t.execTag !== bashTag && t.startTime === tokens[0]!.startTime)).toBe(true);
    const backend = createLinuxBackend({ thread: 'inline' });
    const [before, after] = await backend.resolve([flows[0]!, flows[15]!].map((f) => Buffer.from(f.token!, 'base64')));
    // the token taken while bash ran no longer describes the running process: never python3's identity
    expect(before?.trust).toBe('gone');
    expect(after).toMatchObject({ trust: 'secure', pid });
    expect(after?.path).toMatch(/python3/);
    child.stdin?.end();
  });
});
