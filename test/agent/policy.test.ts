// The rules file's policy switches decide flows no rule matches: allow packaged code, block unpackaged
// code, the default action at the deadline; `once` rules are used up by their first flow. The verdict
// names the switch that decided.
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage, Verdict } from '../../src/protocol/messages.js';
import {
  TestClient, cleanupDir, connectScript, lines, skipUnlessCapable, spawnIn, startAgent, waitFor, type RunningAgent,
} from './helpers.js';
import { useNamespace } from './fixture.js';

const skip = skipUnlessCapable();

function agentDir(policy: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
  writeFileSync(join(dir, 'rules.json'), JSON.stringify({ version: 1, policy, rules: [] }));
  return dir;
}

describe.skipIf(skip)('flowtop agent policy switches', () => {
  const agents: RunningAgent[] = [];
  const PORT = 7500;
  const space = useNamespace({ servers: [PORT] });

  afterAll(async () => {
    for (const a of agents) {
      await a.stop();
      cleanupDir(a.dir);
    }
  });

  /** Connects with `node` (or another copy of it), returns the outcome line and the flow's verdict. */
  async function connect(client: TestClient, node = process.execPath): Promise<{ result: string; verdict: Verdict }> {
    const [, ...rest] = connectScript(PORT, 8000);
    const child = spawnIn(space.ns, space.cg, [node, ...rest]);
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const result = await out.next((l) => !l.startsWith('pid'), 15_000);
    child.stdin?.end();
    const flow = await waitFor('the flow', () => client.flows((f) => f.pid === pid && f.remote.port === PORT)[0]);
    const msg = await client.waitFor<Extract<ExtensionMessage, { type: 'verdict' }>>('its verdict', (m) => m.type === 'verdict' && m.id === flow.id);
    return { result, verdict: msg.verdict };
  }

  it('allows packaged code at once and blocks unpackaged code at once, saying which switch decided', async () => {
    const dir = agentDir({ allowPackaged: true, blockUnpackaged: true, blockMode: 'reject' });
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7311', '--timeout', '20s'], dir);
    agents.push(agent);
    const client = new TestClient(agent.socket);
    await client.subscribe();
    // /usr/bin/node belongs to a Debian package
    const packaged = await connect(client);
    expect(packaged.result).toMatch(/^connected/);
    expect(packaged.verdict).toMatchObject({ action: 'allow', by: 'default', policy: 'allowPackaged' });
    expect(packaged.verdict.reason).toMatch(/allow-packaged/);
    // a copy of it belongs to no package
    const copy = join(dir, 'node-copy');
    copyFileSync(process.execPath, copy);
    const unpackaged = await connect(client, copy);
    expect(unpackaged.result).toMatch(/^error/);
    expect(Number(unpackaged.result.split(' ')[2])).toBeLessThan(5000); // refused, not timed out
    expect(unpackaged.verdict).toMatchObject({ action: 'block', by: 'default', policy: 'blockUnpackaged', blockMode: 'reject' });
    expect(unpackaged.verdict.reason).toMatch(/no package vouches/);

    // a `once` rule decides the next matching flow only, then the switches again
    client.send({ type: 'rule-add', rule: { action: 'block', blockMode: 'reject', endpoint: { port: PORT }, protocol: 'tcp', duration: { kind: 'once' } } });
    await client.waitFor('the once rule', (m) => m.type === 'rule-changed' && m.op === 'added');
    const first = await connect(client);
    expect(first.result).toMatch(/^error/);
    expect(first.verdict).toMatchObject({ action: 'block', by: 'rule' });
    const second = await connect(client);
    expect(second.result).toMatch(/^connected/);
    expect(second.verdict).toMatchObject({ action: 'allow', policy: 'allowPackaged' });
    client.close();
  }, 60_000);

  it('applies the rules file\'s default action at the deadline', async () => {
    await agents.pop()?.stop();
    const dir = agentDir({ defaultAction: 'block' });
    const agent = await startAgent(space.ns, space.cg, ['--queue-num', '7312', '--timeout', '1s', '--block-mode', 'reject'], dir);
    agents.push(agent);
    const client = new TestClient(agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type === 'hello' && hello.mode?.defaultAction).toBe('block');
    const { result, verdict } = await connect(client);
    expect(result).toMatch(/^error/);
    expect(verdict).toMatchObject({ action: 'block', by: 'default', policy: 'defaultAction', blockMode: 'reject' });
    client.close();
  }, 60_000);
});
