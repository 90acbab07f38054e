// The agent's rule conversation tells subscribed clients about every rule that leaves the list, also
// one that leaves it without a request (an "until it exits" rule whose process ended) just before
// another rule is added: clients must never keep showing a rule the agent no longer has.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RuleConversation } from '../../src/agent/rule-requests.js';
import { storeRuleBook } from '../../src/agent/rule-book.js';
import { RuleStore } from '../../src/rules/store.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import type { ServerClient } from '../../src/protocol/server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function client(): ServerClient {
  return { id: 'c1', subscribed: true, send: () => true, reply: () => true, close: () => {} };
}

describe('rule conversation', () => {
  it('announces a rule that left the list without a request, even when another rule is added right after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-talk-'));
    dirs.push(dir);
    const store = await RuleStore.open(join(dir, 'rules.json'));
    const book = storeRuleBook(store);
    const heard: ExtensionMessage[] = [];
    const talk = new RuleConversation({ rules: book, broadcast: (m) => heard.push(m), watched: () => true, changed: () => {}, log: () => {} });
    await talk.add(client(), { action: 'allow', protocol: 'tcp', endpoint: { port: 1 }, duration: { kind: 'always' } });
    const first = heard.find((m) => m.type === 'rule-changed' && m.op === 'added');
    expect(first?.type).toBe('rule-changed');
    const firstId = first?.type === 'rule-changed' ? first.rule.id : '';
    // the rule ends on its own (as EndedRules removes a rule whose process exited)...
    await book.remove(firstId);
    // ...and before the next periodic check, a client's request adds another
    await talk.add(client(), { action: 'allow', protocol: 'tcp', endpoint: { port: 2 }, duration: { kind: 'always' } });
    talk.sendHits();
    const removed = heard.filter((m) => m.type === 'rule-changed' && m.op === 'removed').map((m) => (m.type === 'rule-changed' ? m.rule.id : ''));
    expect(removed).toEqual([firstId]);
    // and only once
    talk.sendHits();
    expect(heard.filter((m) => m.type === 'rule-changed' && m.op === 'removed')).toHaveLength(1);
    await store.close();
  });
});
