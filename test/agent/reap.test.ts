// A pending flow whose process died is decided at once (the default, with the reason) instead of
// holding its packets until the deadline; a flow whose process lives keeps waiting.
import { describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient, connectScript, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type VerdictMsg = Extract<ExtensionMessage, { type: 'verdict' }>;

describe.skipIf(skip)('flowtop agent reaps pending flows of dead processes', () => {
  const PORT = 7900;
  const f = useAgent({ servers: [PORT], flags: ['--queue-num', '7351', '--timeout', '30s', '--default', 'block', '--block-mode', 'drop'] });

  it('gives the default at once when the process is killed; a living process keeps waiting', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const start = (): Promise<{ child: ChildProcess; flowId: string }> => (async () => {
      const child = spawnIn(f.ns, f.cg, connectScript(PORT, 25_000));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
      expect(flow.token).toBeDefined();
      return { child, flowId: flow.id };
    })();
    const dying = await start();
    const living = await start();
    const killedAt = Date.now();
    dying.child.kill('SIGKILL');
    const v = await client.waitFor<VerdictMsg>('the reaped verdict', (m) => m.type === 'verdict' && m.id === dying.flowId, 5000);
    expect(Date.now() - killedAt).toBeLessThan(3000); // not the 30 s deadline
    expect(v.verdict).toMatchObject({ action: 'block', by: 'default' });
    expect(v.verdict.reason).toMatch(/process \d+ exited while its flow waited/);
    // the other flow's process lives: still pending a while later
    await new Promise((r) => setTimeout(r, 1000));
    expect(client.messages.some((m) => m.type === 'verdict' && m.id === living.flowId)).toBe(false);
    client.send({ type: 'verdict', id: living.flowId, action: 'allow', remember: 'once' });
    await client.waitFor('the living flow decided by the user', (m) => m.type === 'verdict' && m.id === living.flowId && m.verdict.by === 'user');
    living.child.stdin!.end();
    client.close();
  }, 30_000);
});
