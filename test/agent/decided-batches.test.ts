// Flows a rule decides in a queue thread reach a watching client through the binary batches, never one
// message per connection: each with its verdict (allowed, or blocked with its block mode), its rule and
// its owner, its `flow` before anything else about it, within a few tens of ms — and `flowtop agent
// --status` says how many batches carried how many flows.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import type { ExtensionMessage, Rule } from '../../src/protocol/messages.js';
import type { AgentStatus } from '../../src/agent/status.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();

const ALLOWED = 7940;
const REJECTED = 7941;
const CONNECTS = 120;
const REFUSED = 6;

const rule = (id: string, port: number, extra: Pick<Rule, 'action' | 'blockMode'>): Rule => ({
  id, protocol: 'tcp', endpoint: { port }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true, ...extra,
});

function status(socket: string): AgentStatus | undefined {
  try {
    return JSON.parse(readFileSync(`${socket}.status.json`, 'utf8')) as AgentStatus;
  } catch {
    return undefined;
  }
}

describe.skipIf(skip)('flowtop agent: flows decided by rule, handed over in batches', () => {
  const f = useAgent({
    servers: [ALLOWED, REJECTED],
    flags: ['--queue-num', '7371', '--timeout', '20s'],
    rulesFile: {
      policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false },
      rules: [rule('r-allow', ALLOWED, { action: 'allow' }), rule('r-reject', REJECTED, { action: 'block', blockMode: 'reject' })],
    },
  });

  it('a watching client sees every allowed and rejected flow with its verdict and rule, before its bytes and end, from a few batches', async () => {
    const client = new TestClient(f.agent.socket);
    try {
      await client.subscribe();
      const before = await waitFor('the status file', () => status(f.agent.socket));
      // One program: many short connections a rule allows, then a few a rule rejects.
      const script = `
import socket, os, sys, time
print('pid', os.getpid(), flush=True)
for i in range(${CONNECTS}):
    s = socket.create_connection(('127.0.0.1', ${ALLOWED}))
    s.send(b'x')
    s.close()
refused = 0
for i in range(${REFUSED}):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(('127.0.0.1', ${REJECTED}))
    except OSError:
        refused += 1
    s.close()
print('refused', refused, flush=True)
print('done', time.time(), flush=True)
`;
      const child = spawnIn(f.ns, f.cg, ['python3', '-c', script]);
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      expect(await out.next((l) => l.startsWith('refused'), 20_000)).toBe(`refused ${REFUSED}`);
      await out.next((l) => l.startsWith('done'));
      const doneAt = Date.now();
      const ours = (x: { pid?: number; remote: { port: number } }, port: number): boolean => x.pid === pid && x.remote.port === port;
      const rejected = await waitFor('the rejected flows', () => {
        const got = client.flows((x) => ours(x, REJECTED));
        return got.length >= REFUSED ? got : undefined;
      });
      // a batch leaves at most ~30 ms after its first flow: the last ones reach the client promptly
      expect(Date.now() - doneAt).toBeLessThan(1000);
      const allowed = await waitFor('the allowed flows', () => {
        const got = client.flows((x) => ours(x, ALLOWED));
        return got.length >= CONNECTS ? got : undefined;
      });
      expect(new Set(allowed.map((x) => x.id)).size).toBe(CONNECTS);
      for (const x of allowed) {
        expect(x.verdict).toEqual({ action: 'allow', by: 'rule', ruleId: 'r-allow' });
        expect(x.token).toMatch(/^[A-Za-z0-9+/]+=*$/);
        expect(x).toMatchObject({ protocol: 'tcp', family: 'ipv4', direction: 'outbound', local: { address: '127.0.0.1' }, remote: { address: '127.0.0.1', port: ALLOWED } });
      }
      expect(rejected).toHaveLength(REFUSED);
      for (const x of rejected) expect(x.verdict).toEqual({ action: 'block', by: 'rule', ruleId: 'r-reject', blockMode: 'reject' });

      // every allowed flow ends, and nothing about a flow comes before its `flow`
      await waitFor('the allowed flows to end', () => allowed.every((x) => client.messages.some((m) => m.type === 'end' && m.id === x.id)), 15_000);
      const seen = new Set<string>();
      const early: string[] = [];
      for (const m of client.messages as ExtensionMessage[]) {
        if (m.type === 'flow') seen.add(m.flow.id);
        else if (m.type === 'end' && !seen.has(m.id)) early.push(`end ${m.id}`);
        else if (m.type === 'bytes') for (const c of m.counters) if (!seen.has(c.id)) early.push(`bytes ${c.id}`);
      }
      expect(early).toEqual([]);

      // handed over in batches: far fewer posts than connections
      const after = await waitFor('the status counters', () => {
        const s = status(f.agent.socket);
        return s && (s.counters.decidedHandedOver ?? 0) - (before.counters.decidedHandedOver ?? 0) >= CONNECTS + REFUSED ? s : undefined;
      }, 5000);
      const flows = after.counters.decidedHandedOver! - (before.counters.decidedHandedOver ?? 0);
      const batches = after.counters.decidedBatches! - (before.counters.decidedBatches ?? 0);
      expect(batches).toBeGreaterThan(0);
      expect(batches).toBeLessThanOrEqual(flows / 4);
    } finally {
      client.close();
    }
  }, 60_000);
});
