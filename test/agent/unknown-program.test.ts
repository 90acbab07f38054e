// Without connect records (here --no-bpf: owners found by /proc scans) the agent knows which process
// holds a socket, not which program started the connection: an exec may have come between. Such a
// flow is never secure, and nothing keyed by its program may be remembered from it — neither an
// identity rule ("always") nor a rule for the process, which would cover whatever it execs next.
import { describe, expect, it } from 'vitest';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { LinuxResolver } from '../../src/native/linux/process.js';
import { TestClient, connectScript, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type ErrorMessage = Extract<ExtensionMessage, { type: 'error' }>;

describe.skipIf(skip)('flowtop agent: an owner whose program is not known', () => {
  const PORT = 7930;
  const f = useAgent({ servers: [PORT], flags: ['--queue-num', '7931', '--timeout', '20s', '--no-bpf'] });

  it('is shown insecure with the reason, and neither "process" nor "always" can be remembered from it', async () => {
    const client = new TestClient(f.agent.socket);
    try {
      await client.subscribe();
      const child = spawnIn(f.ns, f.cg, connectScript(PORT, 15_000));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the pending flow', () => client.flows((x) => x.pid === pid && !!x.pending)[0]);
      expect(decodeLinuxToken(Buffer.from(flow.token!, 'base64'))).toMatchObject({ pid, execTag: 0 });
      const seen = new LinuxResolver().resolveOne(Buffer.from(flow.token!, 'base64'));
      expect(seen.trust).toBe('insecure');
      expect(seen.reason?.message).toMatch(/does not say which program/);

      client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'process', ref: 'p' });
      const refused = await client.waitFor<ErrorMessage>('the refusal', (m) => m.type === 'error' && m.ref === 'p');
      expect(refused.message).toMatch(/cannot remember "process": the agent could not tell which program made this connection/);
      // the verdict itself still applies: the program connects, and no rule was made
      expect(await out.next((l) => !l.startsWith('pid'), 15_000)).toMatch(/^connected/);
      expect(client.messages.some((m) => m.type === 'rule-changed')).toBe(false);
      child.stdin?.end();

      const second = spawnIn(f.ns, f.cg, connectScript(PORT, 15_000));
      const out2 = lines(second);
      const pid2 = Number((await out2.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow2 = await waitFor('the second pending flow', () => client.flows((x) => x.pid === pid2 && !!x.pending)[0]);
      client.send({ type: 'verdict', id: flow2.id, action: 'allow', remember: 'always', ref: 'a' });
      const refused2 = await client.waitFor<ErrorMessage>('the second refusal', (m) => m.type === 'error' && m.ref === 'a');
      expect(refused2.message).toMatch(/cannot remember "always"/);
      expect(await out2.next((l) => !l.startsWith('pid'), 15_000)).toMatch(/^connected/);
      second.stdin?.end();
    } finally {
      client.close();
    }
  }, 60_000);
});
