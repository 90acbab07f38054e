// Each shipped scenario played end to end at high speed, checked from the client's side: every line
// decodes, ids are unique, nothing refers to a flow that was not announced or already ended, and
// every pending flow gets exactly one verdict.
import { afterEach, describe, expect, it } from 'vitest';
import { startDemoExtension, type DemoExtension } from '../../src/demo/extension.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient } from './client.js';

const open: Array<DemoExtension | TestClient> = [];
afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});

function checkStream(messages: ExtensionMessage[]): { flows: number; decided: number; waiting: number; problems: string[] } {
  const state = new Map<string, 'pending' | 'open' | 'ended'>();
  const problems: string[] = [];
  let pending = 0;
  let decided = 0;
  for (const m of messages) {
    switch (m.type) {
      case 'flow':
        if (state.has(m.flow.id)) problems.push(`flow ${m.flow.id} announced twice`);
        state.set(m.flow.id, m.flow.pending ? 'pending' : 'open');
        if (m.flow.pending) pending++;
        if (m.flow.pending && m.flow.pending.deadline < m.flow.time) problems.push(`flow ${m.flow.id}: deadline before its time`);
        break;
      case 'verdict':
        if (state.get(m.id) !== 'pending' && !(state.get(m.id) === 'open' && m.verdict.action === 'block')) problems.push(`verdict for ${m.id} in state ${state.get(m.id)}`);
        state.set(m.id, 'open');
        decided++;
        break;
      case 'bytes':
        for (const c of m.counters) if (state.get(c.id) !== 'open') problems.push(`bytes for ${c.id} in state ${state.get(c.id)}`);
        break;
      case 'end':
        if (state.get(m.id) === undefined || state.get(m.id) === 'ended') problems.push(`end for ${m.id} in state ${state.get(m.id)}`);
        state.set(m.id, 'ended');
        break;
      case 'error':
        problems.push(`error ${m.code}: ${m.message}`);
        break;
      default:
        break;
    }
  }
  const waiting = [...state.values()].filter((s) => s === 'pending').length;
  if (decided > pending) problems.push(`${decided} verdicts for ${pending} pending flows`);
  return { flows: state.size, decided, waiting, problems };
}

describe('shipped scenarios, replayed', () => {
  for (const [name, speed] of [['default', 400], ['linux', 300], ['burst', 20]] as const) {
    it(`${name} plays to the end with a consistent stream`, async () => {
      const demo = await startDemoExtension({ scenario: name, speed });
      open.push(demo);
      const client = await TestClient.open(demo.socketPath);
      open.push(client);
      const total = demo.scenario.events.filter((e) => e.kind === 'flow').length;
      const flowsSeen = (): number => client.messages.filter((m) => m.type === 'flow').length;
      await client.until(() => flowsSeen() === total, 15_000, `all ${total} flows`);
      // Then every flow still waiting falls to its default at its deadline.
      await client.until(() => checkStream(client.messages).waiting === 0, 15_000, 'every pending flow decided');
      const result = checkStream(client.messages);
      expect(client.problems).toEqual([]);
      expect(result.problems.slice(0, 10)).toEqual([]);
      expect(result.flows).toBe(total);
      if (name !== 'burst') expect(result.decided).toBeGreaterThan(0);
    });
  }
});
