// A blocked UDP sender is one flow with a datagram count, not a row per datagram: a dropped datagram
// leaves no connection-tracking entry, so each next one is NEW and comes back to the queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, lines, skipUnlessCapable, spawnIn, startServer, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
const RULE_PORT = 7391;
const USER_PORT = 7392;

/** A python sender: one socket, `count` datagrams to 127.0.0.1:port, `gapMs` apart. */
function sender(port: number, count: number, gapMs: number): string[] {
  return ['python3', '-c', `
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print('pid', os.getpid(), flush=True)
for i in range(${count}):
    try:
        s.sendto(b'x%d' % i, ('127.0.0.1', ${port}))
    except OSError:
        pass
    time.sleep(${gapMs / 1000})
print('done', flush=True)
`];
}

describe.skipIf(skip)('flowtop agent: a blocked UDP conversation', () => {
  const f = useAgent({
    flags: ['--queue-num', '7390', '--timeout', '2s', '--default', 'block'],
    setup: async (ns) => [await startServer(ns, RULE_PORT, 'udp'), await startServer(ns, USER_PORT, 'udp')],
  });
  let client: TestClient;
  beforeAll(async () => {
    client = new TestClient(f.agent.socket);
    await client.subscribe();
  });
  afterAll(() => client?.close());

  it('blocked by a rule: 15 datagrams are one flow whose count reaches 15', async () => {
    client.send({ type: 'rule-add', ref: 'udp-block', rule: { action: 'block', endpoint: { port: RULE_PORT }, protocol: 'udp', duration: { kind: 'always' } } });
    await client.waitFor('the rule', (m) => m.type === 'rule-changed' && m.ref === 'udp-block');
    const child = spawnIn(f.ns, f.cg, sender(RULE_PORT, 15, 100));
    await lines(child).next((l) => l === 'done', 15_000);
    const last = await waitFor('the count of 15', () => {
      const seen = client.flows((fl) => fl.protocol === 'udp' && fl.remote.port === RULE_PORT);
      return seen.some((fl) => fl.packets === 15) ? seen : undefined;
    }, 5_000);
    expect(new Set(last.map((fl) => fl.id)).size).toBe(1);
    expect(last.every((fl) => fl.verdict?.action === 'block' && fl.verdict.by === 'rule')).toBe(true);
  }, 30_000);

  it('blocked at its prompt: the datagrams after the verdict count on the same flow', async () => {
    const child = spawnIn(f.ns, f.cg, sender(USER_PORT, 15, 100));
    const pending = await waitFor('the pending flow', () => client.flows((fl) => fl.protocol === 'udp' && fl.remote.port === USER_PORT && fl.pending !== undefined)[0]);
    client.send({ type: 'verdict', id: pending.id, action: 'block', remember: 'once' });
    await lines(child).next((l) => l === 'done', 15_000);
    const seen = await waitFor('a count past 1', () => {
      const all = client.flows((fl) => fl.protocol === 'udp' && fl.remote.port === USER_PORT);
      return all.some((fl) => (fl.packets ?? 0) > 5) ? all : undefined;
    }, 5_000);
    expect(new Set(seen.map((fl) => fl.id))).toEqual(new Set([pending.id]));
  }, 30_000);
});
