// A flow the agent identified carries that identity (`flow.identity`): a short-lived program blocked by
// an identity rule has exited by the time a client looks its token up (`gone`), and the client then
// shows the program the agent identified when it connected, said to be the agent's word, instead of
// "pid N".
import { describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { flowKey, initialTable, reduce } from '../../src/state/reducer.js';
import { displayName } from '../../src/state/derive.js';
import { flowDetailLines } from '../../src/ui/Details.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type RuleChanged = Extract<ExtensionMessage, { type: 'rule-changed' }>;

describe.skipIf(skip)('flowtop agent: the identity it established rides with the flow', () => {
  const PORT = 7910;
  const f = useAgent({ servers: [PORT], flags: ['--queue-num', '7363', '--timeout', '20s'] });

  it('a short-lived program blocked by an identity rule: the flow carries its identity; a client whose lookup finds it gone shows it as the agent\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-flowid-'));
    const exe = join(dir, 'short-lived'); // unpackaged: its identity is its SHA-256
    copyFileSync('/bin/bash', exe);
    chmodSync(exe, 0o755);
    const client = new TestClient(f.agent.socket);
    const backend = createLinuxBackend({ thread: 'inline' });
    try {
      await client.subscribe();
      const sha = createHash('sha256').update(readFileSync(exe)).digest('hex');
      client.send({ type: 'rule-add', rule: { action: 'block', blockMode: 'reject', identity: { kind: 'sha256', value: sha }, protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' } } });
      const added = await client.waitFor<RuleChanged>('the rule', (m) => m.type === 'rule-changed');

      /** Connects once (refused by the rule) and exits; resolves with its PID and whether it connected. */
      const connectOnce = async (): Promise<{ pid: number; connected: boolean }> => {
        const child = spawnIn(f.ns, f.cg, [exe, '-c', `echo pid $$; exec 3<>/dev/tcp/127.0.0.1/${PORT} && echo connected`]);
        const closed = new Promise((r) => child.once('close', r));
        const out = lines(child);
        const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
        await closed;
        return { pid, connected: out.all.includes('connected') };
      };

      // first run: verified on the main thread; second: matched in a queue thread with the identity it was taught
      for (let run = 0; run < 2; run++) {
        const { pid, connected } = await connectOnce();
        expect(connected).toBe(false);
        const identified = await waitFor('the flow with its identity', () => client.flows((x) => x.pid === pid && x.identity !== undefined).at(-1));
        expect(identified.identity).toEqual({ kind: 'sha256', value: sha, path: exe });
        const verdict = identified.verdict ?? (await client.waitFor<Extract<ExtensionMessage, { type: 'verdict' }>>('its verdict', (m) => m.type === 'verdict' && m.id === identified.id)).verdict;
        expect(verdict).toMatchObject({ action: 'block', by: 'rule', ruleId: added.rule.id });

        // The client's own lookup comes after the program exited: gone.
        const [attribution] = await backend.resolve([Buffer.from(identified.token!, 'base64')]);
        expect(attribution?.trust).toBe('gone');
        // The table as the TUI builds it from these messages and that answer.
        const events = client.messages.filter((m) => (m.type === 'flow' && m.flow.id === identified.id) || (m.type === 'verdict' && m.id === identified.id)).map((message) => ({ source: 'agent', message }));
        let s = reduce(initialTable(), { type: 'events', events });
        s = reduce(s, { type: 'attributions', updates: [{ key: identified.token!, attribution: attribution! }] });
        const row = s.flows.get(flowKey('agent', identified.id))!;
        expect(row.attribution.trust).toBe('gone'); // the client's own trust, not the agent's word
        expect(displayName(row)).toBe('short-lived (agent)');
        expect(displayName(row)).not.toContain(`pid ${pid}`);
        const details = flowDetailLines(row);
        expect(details).toContainEqual({ label: 'agent identity', value: `sha256:${sha}` });
        expect(details.find((l) => l.label === 'from')?.value).toMatch(/^identified by the agent \(agent\) when it connected: it checked that exact process instance; this client could not check it itself/);
      }
    } finally {
      backend.close?.();
      client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
