// Rules keyed by code identity decide in the agent: the first flow of a program is verified on the main
// thread (token → pidfd → executable hashed), after which the queue threads match that very file
// (same dev, inode, size, mtime, ctime) themselves. A changed file is a different program: it must
// never ride on the identity learned for the old one.
import { describe, expect, it } from 'vitest';
import { appendFileSync, chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
type RuleChanged = Extract<ExtensionMessage, { type: 'rule-changed' }>;

function status(socket: string): { counters: { decidedByRule: number; decidedByIdentityInWorker: number } } | undefined {
  try {
    return JSON.parse(readFileSync(`${socket}.status.json`, 'utf8'));
  } catch {
    return undefined;
  }
}

describe.skipIf(skip)('flowtop agent identity rules', () => {
  const PORT = 7900;
  const f = useAgent({ servers: [PORT], flags: ['--queue-num', '7361', '--timeout', '20s'] });

  it('an identity rule decides a program\'s connections in the queue threads once verified; the changed file is asked about', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-idrule-'));
    const exe = join(dir, 'copied-bash'); // unpackaged: its identity is its SHA-256
    copyFileSync('/bin/bash', exe);
    chmodSync(exe, 0o755);
    const client = new TestClient(f.agent.socket);
    try {
      await client.subscribe();
      const sha = createHash('sha256').update(readFileSync(exe)).digest('hex');
      client.send({ type: 'rule-add', rule: { action: 'allow', identity: { kind: 'sha256', value: sha }, protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' } } });
      const added = await client.waitFor<RuleChanged>('the rule', (m) => m.type === 'rule-changed');

      /** Runs the copied shell to connect once; resolves with its PID and whether it connected. */
      const connectOnce = async (): Promise<{ pid: number; connected: boolean }> => {
        const child = spawnIn(f.ns, f.cg, [exe, '-c', `echo pid $$; exec 3<>/dev/tcp/127.0.0.1/${PORT} && echo connected`]);
        const closed = new Promise((r) => child.once('close', r));
        const out = lines(child);
        const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
        await closed;
        return { pid, connected: out.all.includes('connected') };
      };

      for (let i = 0; i < 6; i++) {
        const { pid, connected } = await connectOnce();
        expect(connected).toBe(true);
        const flow = await waitFor('the flow', () => client.flows((x) => x.pid === pid)[0]);
        const verdict = flow.verdict ?? (await client.waitFor<Extract<ExtensionMessage, { type: 'verdict' }>>('its verdict', (m) => m.type === 'verdict' && m.id === flow.id)).verdict;
        expect(verdict).toMatchObject({ action: 'allow', by: 'rule', ruleId: added.rule.id });
      }
      // the first run was verified on the main thread; the later ones were matched in the queue
      // threads (the status file is written once a second: wait for one written after all six)
      await waitFor('the status counters', () => {
        const now = status(f.agent.socket);
        return now && now.counters.decidedByIdentityInWorker >= 4 && now.counters.decidedByRule >= 6 ? now : undefined;
      }, 5000);

      // one byte more: another program, with another hash — the rule must not match it
      appendFileSync(exe, Buffer.from([0]));
      const child = spawnIn(f.ns, f.cg, [exe, '-c', `echo pid $$; exec 3<>/dev/tcp/127.0.0.1/${PORT} && echo connected`]);
      const closed = new Promise((r) => child.once('close', r));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const pending = await waitFor('the changed program asked about', () => client.flows((x) => x.pid === pid && !!x.pending)[0]);
      client.send({ type: 'verdict', id: pending.id, action: 'block', remember: 'once', blockMode: 'reject' });
      await closed;
      expect(out.all.includes('connected')).toBe(false);
    } finally {
      client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
