// A UDP datagram (IPv4 and IPv6) whose sender exited before the packet was judged is still attributed:
// the sendmsg hook keyed the datagram's address tuple as well as its socket (the socket is gone by then).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();

describe.skipIf(skip)('flowtop agent: exited UDP senders', () => {
  const f = useAgent({ flags: ['--queue-num', '7361', '--timeout', '20s'] });
  let client: TestClient;
  beforeAll(async () => {
    client = new TestClient(f.agent.socket);
    await client.subscribe();
  });
  afterAll(() => client?.close());

  for (const [family, address, port] of [['ipv4', '127.0.0.1', 7370], ['ipv6', '::1', 7371]] as const) {
    it(`${family}: the flow names the sender that had already exited`, async () => {
      // Freeze the agent so the datagram waits in the queue while its sender exits and its socket closes.
      f.agent.proc.kill('SIGSTOP');
      let sender: number;
      try {
        const child = spawnIn(f.ns, f.cg, ['python3', '-c', `
import os, socket
s = socket.socket(socket.AF_INET${family === 'ipv6' ? '6' : ''}, socket.SOCK_DGRAM)
s.sendto(b'hello', ('${address}', ${port}))
print('pid', os.getpid(), flush=True)
`]);
        const exited = new Promise((resolve) => child.on('exit', resolve));
        const out = lines(child);
        sender = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
        await exited;
      } finally {
        f.agent.proc.kill('SIGCONT');
      }
      const flow = await waitFor('the UDP flow', () => client.flows((f) => f.protocol === 'udp' && f.remote.port === port)[0]);
      expect(flow.family).toBe(family);
      expect(flow.pid).toBe(sender);
      // the process is gone: no token can name it, and the flow says why
      expect(flow.token).toBeUndefined();
      expect(flow.ownerError).toMatch(/exited/);
      // nobody waits for its answer: decided at once, with the reason
      const v = await client.waitFor('its verdict', (m) => m.type === 'verdict' && m.id === flow.id);
      expect(v.type === 'verdict' && v.verdict.reason).toMatch(/exited/);
    }, 30_000);
  }
});
