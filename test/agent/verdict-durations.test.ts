// Remembered verdicts in the agent, end to end: each duration (until the process exits, for a while,
// until the agent restarts, always) and scope (process, host, port, endpoint; domain needs a host
// name) makes the rule it says, and real programs in the namespace see the outcome.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientMessage, ExtensionMessage, Rule } from '../../src/protocol/messages.js';
import { TestClient, connectScript, lines, skipUnlessCapable, spawnIn, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

type RuleChanged = Extract<ExtensionMessage, { type: 'rule-changed' }>;

const skip = skipUnlessCapable();

/** Connects to 127.0.0.1:port each time a line arrives on stdin, printing the outcome of each. */
function connectOnEachLine(port: number): string[] {
  return [process.execPath, '-e', `
    console.log('pid', process.pid);
    const go = () => {
      const s = require('net').connect(${port}, '127.0.0.1');
      const timer = setTimeout(() => { console.log('timeout'); s.destroy(); }, 8000);
      s.on('connect', () => { clearTimeout(timer); console.log('connected'); s.destroy(); });
      s.on('error', (e) => { clearTimeout(timer); console.log('error', e.code); });
    };
    let buf = '';
    process.stdin.on('data', (d) => { buf += d; while (buf.includes('\\n')) { buf = buf.slice(buf.indexOf('\\n') + 1); go(); } });
    process.stdin.on('end', () => process.exit(0));
  `];
}

describe.skipIf(skip)('flowtop agent: verdict durations and scopes', () => {
  const PORT = 7110;
  const f = useAgent({ flags: ['--queue-num', '7321', '--timeout', '20s', '--default', 'allow', '--workers', '1'], servers: [PORT] });

  /** Starts a program that connects once; resolves with its pid, its pending flow and its output. */
  async function heldConnect(client: TestClient) {
    const child = spawnIn(f.ns, f.cg, connectScript(PORT, 8000));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((x) => x.pid === pid && !!x.pending)[0]);
    return { child, out, pid, flow };
  }

  async function ruleFrom(client: TestClient, message: ClientMessage & { ref: string }): Promise<Rule> {
    client.send(message);
    const added = await client.waitFor<RuleChanged>('the rule', (m) => (m.type === 'rule-changed' && m.op === 'added' && m.ref === message.ref) || (m.type === 'error' && m.ref === message.ref));
    expect(added.type, JSON.stringify(added)).toBe('rule-changed');
    return added.rule;
  }

  async function removeRule(client: TestClient, id: string): Promise<void> {
    client.send({ type: 'rule-remove', id });
    await client.waitFor('rule removed', (m) => m.type === 'rule-changed' && m.op === 'removed' && m.rule.id === id);
  }

  it('announces the durations and scopes it honours', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type === 'hello' && hello.capabilities).toEqual(expect.arrayContaining(['verdict-durations', 'verdict-scopes']));
    client.close();
  });

  it('until it exits, for this host: later connections of this process pass, another process still waits', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const child = spawnIn(f.ns, f.cg, connectOnEachLine(PORT));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    child.stdin!.write('\n');
    const flow = await waitFor('the pending flow', () => client.flows((x) => x.pid === pid && !!x.pending)[0]);
    const rule = await ruleFrom(client, { type: 'verdict', id: flow.id, action: 'allow', remember: 'process', scope: 'host', ref: 'proc' });
    expect(rule).toMatchObject({ action: 'allow', endpoint: { address: '127.0.0.1' }, protocol: 'tcp', direction: 'outbound', duration: { kind: 'process', token: flow.token } });
    expect(rule.endpoint?.port).toBeUndefined();
    expect(await out.next((l) => l !== `pid ${pid}`)).toBe('connected');
    // The same process again: decided by the rule, never held.
    child.stdin!.write('\n');
    await waitFor('the second connection', () => out.all.filter((x) => x === 'connected').length >= 2 || undefined, 5000);
    expect(out.all.filter((x) => x !== `pid ${pid}`)).toEqual(['connected', 'connected']);
    expect(client.flows((x) => x.pid === pid && !!x.pending)).toHaveLength(1);
    // Another instance of the same program is another process: it waits.
    const other = await heldConnect(client);
    client.send({ type: 'verdict', id: other.flow.id, action: 'allow', remember: 'once' });
    expect(await other.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    other.child.stdin?.end();
    // The process exits: its rule ends with it, and the clients are told.
    child.stdin!.end();
    await client.waitFor('the rule removed when its process exited', (m) => m.type === 'rule-changed' && m.op === 'removed' && m.rule.id === rule.id, 8_000);
    const file = join(f.agent.dir, 'rules.json');
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '').not.toContain(rule.id);
    client.close();
  });

  it('block for 1 h on this port: an expiring identity rule; the program is refused, and its next run too with nobody watching', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const first = await heldConnect(client);
    const before = Date.now();
    const rule = await ruleFrom(client, { type: 'verdict', id: first.flow.id, action: 'block', remember: 'always', scope: 'port', forMs: 3_600_000, blockMode: 'reject', ref: 'hour' });
    expect(rule).toMatchObject({ action: 'block', endpoint: { port: PORT }, protocol: 'tcp', duration: { kind: 'until' } });
    expect(rule.identity).toBeDefined();
    expect(rule.endpoint?.address).toBeUndefined();
    const until = rule.duration.kind === 'until' ? rule.duration.until : 0;
    expect(until).toBeGreaterThanOrEqual(before + 3_600_000 - 1000);
    expect(until).toBeLessThanOrEqual(Date.now() + 3_600_000 + 1000);
    expect(await first.out.next((l) => !l.startsWith('pid'))).toMatch(/^error /);
    first.child.stdin?.end();
    client.close();
    await waitFor('the client to be gone', () => client.closed);
    const second = spawnIn(f.ns, f.cg, connectScript(PORT, 8000));
    const started = Date.now();
    expect(await lines(second).next((l) => !l.startsWith('pid'), 8000)).toMatch(/^error /);
    expect(Date.now() - started).toBeLessThan(3000);
    second.stdin?.end();
    const cleaner = new TestClient(f.agent.socket);
    await cleaner.subscribe();
    await removeRule(cleaner, rule.id);
    cleaner.close();
  });

  it('a timed rule decides while it lasts, then leaves the list, and the program waits again', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const first = await heldConnect(client);
    const rule = await ruleFrom(client, { type: 'verdict', id: first.flow.id, action: 'allow', remember: 'always', scope: 'port', forMs: 2_500, ref: 'short' });
    expect(await first.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    first.child.stdin?.end();
    const during = spawnIn(f.ns, f.cg, connectScript(PORT, 8000));
    expect(await lines(during).next((l) => !l.startsWith('pid'), 8000)).toMatch(/^connected/);
    during.stdin?.end();
    await client.waitFor('the expired rule removed', (m) => m.type === 'rule-changed' && m.op === 'removed' && m.rule.id === rule.id, 8_000);
    const after = await heldConnect(client);
    client.send({ type: 'verdict', id: after.flow.id, action: 'allow', remember: 'once' });
    expect(await after.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    after.child.stdin?.end();
    client.close();
  });

  it('allow until restart, for this endpoint: a session rule, never written to the rules file, that lets the next run through', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const first = await heldConnect(client);
    const rule = await ruleFrom(client, { type: 'verdict', id: first.flow.id, action: 'allow', remember: 'always', scope: 'endpoint', session: true, ref: 'session' });
    expect(rule).toMatchObject({ action: 'allow', session: true, endpoint: { address: '127.0.0.1', port: PORT }, duration: { kind: 'always' } });
    expect(await first.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    first.child.stdin?.end();
    const file = join(f.agent.dir, 'rules.json');
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '').not.toContain(rule.id);
    // Listed for clients, though.
    client.send({ type: 'rules-list', ref: 'list' });
    const list = await client.waitFor<Extract<ExtensionMessage, { type: 'rules' }>>('the rule list', (m) => m.type === 'rules' && m.ref === 'list');
    expect(list.rules.map((r) => r.id)).toContain(rule.id);
    const second = await (async () => {
      const child = spawnIn(f.ns, f.cg, connectScript(PORT, 8000));
      return { child, result: await lines(child).next((l) => !l.startsWith('pid'), 8000) };
    })();
    expect(second.result).toMatch(/^connected/);
    second.child.stdin?.end();
    await removeRule(client, rule.id);
    client.close();
  });

  it('for this domain without a host name: no rule, said so, and the flow is still decided', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const held = await heldConnect(client);
    client.send({ type: 'verdict', id: held.flow.id, action: 'allow', remember: 'always', scope: 'domain', ref: 'domain' });
    const error = await client.waitFor<Extract<ExtensionMessage, { type: 'error' }>>('the refusal', (m) => m.type === 'error' && m.ref === 'domain');
    expect(error).toMatchObject({ code: 'not-supported', message: expect.stringContaining('no host name is known for this flow') });
    expect(await held.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    held.child.stdin?.end();
    client.close();
  });
});
