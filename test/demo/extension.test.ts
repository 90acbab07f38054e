// The demo extension over a real Unix socket, driven by a protocol client.
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startDemoExtension, type DemoExtension } from '../../src/demo/extension.js';
import { parseScenario } from '../../src/demo/scenario.js';
import { isType, TestClient } from './client.js';
import { bytesLine, CURL_A, CURL_B, endLine, flowLine, scenarioFile, scenarioText, TOOL, UNRECORDED } from './fixtures.js';

const open: Array<DemoExtension | TestClient> = [];
afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});

async function start(events: string[], options: { speed?: number; loop?: boolean; lengthMs?: number } = {}): Promise<DemoExtension> {
  const demo = await startDemoExtension({
    scenario: scenarioFile(scenarioText(events, options.lengthMs ? { lengthMs: options.lengthMs } : {})),
    ...(options.speed ? { speed: options.speed } : {}),
    ...(options.loop ? { loop: true } : {}),
  });
  open.push(demo);
  expect(demo.problems).toEqual([]);
  return demo;
}

async function client(path: string): Promise<TestClient> {
  const c = await TestClient.open(path);
  open.push(c);
  return c;
}

describe('demo extension', () => {
  it('greets with hello, streams the scenario, and a block on a pending flow ends it as blocked', async () => {
    const demo = await start([
      flowLine(0, { id: 'open-1', token: CURL_A, host: 'api.github.com' }),
      flowLine(0, { id: 'held-1', token: TOOL, remote: '45.77.139.12', port: 8443, pending: { deadlineMs: 60_000 } }),
      bytesLine(50, 'open-1', 1_000, 200),
      bytesLine(100, 'open-1', 5_000, 400),
      bytesLine(150, 'held-1', 9_999, 9_999),
    ]);
    const c = await client(demo.socketPath);
    const hello = await c.waitFor(isType('hello'));
    expect(c.messages[0]).toBe(hello);
    expect(hello).toMatchObject({ protocol: 1, platform: 'demo', tokenKind: 'replay', host: 'test-host' });

    const held = await c.waitFor(isType('flow', (m) => m.flow.id === 'held-1'));
    expect(held.flow.pending?.deadline).toBeGreaterThan(held.flow.time);
    expect(held.flow.token).toBe(TOOL);
    const counters = await c.waitFor(isType('bytes', (m) => m.counters.some((x) => x.id === 'open-1' && x.rx === 5_000)));
    expect(counters.counters.find((x) => x.id === 'open-1')?.tx).toBe(400);

    // A client connecting now gets hello, the rules, and the flows as they are: held-1 still waiting.
    const late = await client(demo.socketPath);
    const lateHeld = await late.waitFor(isType('flow', (m) => m.flow.id === 'held-1'));
    expect(late.messages[0]?.type).toBe('hello');
    expect(late.messages[1]?.type).toBe('rules');
    expect(lateHeld.flow.pending).toEqual(held.flow.pending);

    c.send({ type: 'verdict', id: 'held-1', action: 'block', remember: 'once', ref: 'v1' });
    const verdict = await c.waitFor(isType('verdict', (m) => m.id === 'held-1'));
    expect(verdict.verdict).toEqual({ action: 'block', by: 'user' });
    const end = await c.waitFor(isType('end', (m) => m.id === 'held-1'));
    expect(end.reason).toMatch(/blocked/);
    await late.waitFor(isType('end', (m) => m.id === 'held-1'));
    // Nothing of the blocked flow's recorded traffic is played, and no error answered the verdict.
    expect(c.messages.some((m) => m.type === 'bytes' && m.counters.some((x) => x.id === 'held-1'))).toBe(false);
    expect(c.messages.filter((m) => m.type === 'error')).toEqual([]);

    // The client resolves tokens with the replay backend handed out with the extension.
    const [curl, unknown] = await demo.replay.resolve([Buffer.from(CURL_A, 'base64'), Buffer.from(UNRECORDED, 'base64')]);
    expect(curl).toMatchObject({ trust: 'secure', name: 'curl', path: '/usr/bin/curl' });
    expect(unknown?.trust).toBe('insecure');
  });

  it('gives a pending flow nobody answers its default action at its deadline', async () => {
    const demo = await start(
      [
        flowLine(0, { id: 'to-block', token: TOOL, pending: { deadlineMs: 2_000, default: 'block' } }),
        flowLine(0, { id: 'to-allow', token: CURL_A, pending: { deadlineMs: 3_000 } }),
        bytesLine(4_000, 'to-allow', 700, 70),
      ],
      { speed: 10 },
    );
    const c = await client(demo.socketPath);
    const blockedFlow = await c.waitFor(isType('flow', (m) => m.flow.id === 'to-block'));
    const blocked = await c.waitFor(isType('verdict', (m) => m.id === 'to-block'));
    expect(blocked.verdict).toEqual({ action: 'block', by: 'default' });
    expect(blocked.time).toBeGreaterThanOrEqual(blockedFlow.flow.pending?.deadline ?? Infinity);
    await c.waitFor(isType('end', (m) => m.id === 'to-block'));

    // The header's default (allow) for a flow that names none; the flow then carries on.
    const allowed = await c.waitFor(isType('verdict', (m) => m.id === 'to-allow'));
    expect(allowed.verdict).toEqual({ action: 'allow', by: 'default' });
    await c.waitFor(isType('bytes', (m) => m.counters.some((x) => x.id === 'to-allow' && x.rx === 700)));
    expect(c.messages.some((m) => m.type === 'end' && m.id === 'to-allow')).toBe(false);
  });

  it('rule-changed answers carry the request ref; hit counts go out at most once a second per rule', async () => {
    const demo = await start(
      [
        flowLine(0, { id: 'curl-1', token: CURL_A, pending: { deadlineMs: 60_000 } }),
        flowLine(3_000, { id: 'curl-2', token: CURL_B, pending: { deadlineMs: 60_000 } }),
        flowLine(3_000, { id: 'curl-3', token: CURL_B, pending: { deadlineMs: 60_000 } }),
        flowLine(3_000, { id: 'curl-4', token: CURL_B, pending: { deadlineMs: 60_000 } }),
      ],
      { speed: 2 },
    );
    const c = await client(demo.socketPath);
    await c.waitFor(isType('flow', (m) => m.flow.id === 'curl-1'));
    c.send({ type: 'verdict', id: 'curl-1', action: 'block', remember: 'always', ref: 'v1' });
    const added = await c.waitFor(isType('rule-changed', (m) => m.op === 'added'));
    expect(added.ref).toBe('v1');
    // three hits within a few ms: the first count at once, the last one a second later, none between
    await c.waitFor(isType('rule-changed', (m) => m.op === 'updated' && m.rule.hits === 3));
    const counts = c.messages.flatMap((m) => (m.type === 'rule-changed' && m.op === 'updated' ? [m.rule.hits] : []));
    expect(counts).toEqual([1, 3]);
    c.send({ type: 'rule-remove', id: added.rule.id, ref: 'rm1' });
    expect((await c.waitFor(isType('rule-changed', (m) => m.op === 'removed'))).ref).toBe('rm1');
  });

  it('a verdict remembered "always" becomes a rule that decides a later flow of the same identity at once', async () => {
    const demo = await start(
      [
        flowLine(0, { id: 'curl-1', token: CURL_A, pending: { deadlineMs: 60_000 } }),
        // 1.5 s after the first: ample time for the client's verdict, even on a loaded machine.
        flowLine(3_000, { id: 'curl-2', token: CURL_B, pending: { deadlineMs: 60_000 } }),
        flowLine(3_000, { id: 'tool-1', token: TOOL, pending: { deadlineMs: 60_000 } }),
      ],
      { speed: 2 },
    );
    const c = await client(demo.socketPath);
    await c.waitFor(isType('flow', (m) => m.flow.id === 'curl-1'));
    c.send({ type: 'verdict', id: 'curl-1', action: 'block', remember: 'always' });
    const added = await c.waitFor(isType('rule-changed', (m) => m.op === 'added'));
    expect(added.rule).toMatchObject({
      action: 'block',
      duration: { kind: 'always' },
      identity: { kind: 'requirement', value: 'identifier "com.apple.curl" and anchor apple' },
    });
    // Another curl process (another token, same code identity) is decided as it arrives.
    const curl2 = await c.waitFor(isType('flow', (m) => m.flow.id === 'curl-2'));
    expect(curl2.flow.pending).toBeUndefined();
    expect(curl2.flow.verdict).toEqual({ action: 'block', by: 'rule', ruleId: added.rule.id });
    await c.waitFor(isType('end', (m) => m.id === 'curl-2'));
    const hit = await c.waitFor(isType('rule-changed', (m) => m.op === 'updated' && m.rule.id === added.rule.id));
    expect(hit.rule.hits).toBe(1);
    // A different program is not covered by the rule.
    const tool = await c.waitFor(isType('flow', (m) => m.flow.id === 'tool-1'));
    expect(tool.flow.pending).toBeDefined();

    c.send({ type: 'rules-list', ref: 'list-1' });
    const rules = await c.waitFor(isType('rules', (m) => m.ref === 'list-1'));
    expect(rules.rules.map((r) => r.id)).toEqual([added.rule.id]);
  });

  it('rule-add decides waiting flows; rule-remove and errors answer with the request ref', async () => {
    const demo = await start([
      flowLine(0, { id: 'tool-1', token: TOOL, pending: { deadlineMs: 60_000 } }),
      flowLine(0, { id: 'curl-open', token: CURL_A }),
    ]);
    const c = await client(demo.socketPath);
    await c.waitFor(isType('flow', (m) => m.flow.id === 'curl-open'));
    await c.waitFor(isType('flow', (m) => m.flow.id === 'tool-1'));

    c.send({ type: 'verdict', id: 'curl-open', action: 'allow', remember: 'once', ref: 'r1' });
    expect((await c.waitFor(isType('error', (m) => m.ref === 'r1'))).code).toBe('not-pending');
    c.send({ type: 'verdict', id: 'no-such-flow', action: 'block', remember: 'once', ref: 'r2' });
    expect((await c.waitFor(isType('error', (m) => m.ref === 'r2'))).code).toBe('unknown-flow');

    c.send({ type: 'rule-add', ref: 'r3', rule: { action: 'allow', duration: { kind: 'always' }, identity: { kind: 'sha256', value: 'ab'.repeat(32) } } });
    const added = await c.waitFor(isType('rule-changed', (m) => m.op === 'added'));
    const decided = await c.waitFor(isType('verdict', (m) => m.id === 'tool-1'));
    expect(decided.verdict).toEqual({ action: 'allow', by: 'rule', ruleId: added.rule.id });

    c.send({ type: 'rule-remove', id: added.rule.id, ref: 'r4' });
    await c.waitFor(isType('rule-changed', (m) => m.op === 'removed' && m.rule.id === added.rule.id));
    c.send({ type: 'rule-remove', id: added.rule.id, ref: 'r5' });
    expect((await c.waitFor(isType('error', (m) => m.ref === 'r5'))).code).toBe('unknown-rule');

    // Blocking a flow that is already open ends it (the end-flows capability).
    c.send({ type: 'verdict', id: 'curl-open', action: 'block', remember: 'once', ref: 'r6' });
    await c.waitFor(isType('end', (m) => m.id === 'curl-open'));
  });

  it('loops with fresh flow ids and times', async () => {
    const demo = await start([flowLine(0, { id: 'a', token: CURL_A }), endLine(100, 'a')], { loop: true, lengthMs: 200, speed: 2 });
    const c = await client(demo.socketPath);
    const first = await c.waitFor(isType('flow', (m) => m.flow.id === 'a'));
    const second = await c.waitFor(isType('flow', (m) => m.flow.id === 'a#1'));
    const third = await c.waitFor(isType('flow', (m) => m.flow.id === 'a#2'));
    expect(second.flow.time).toBeGreaterThan(first.flow.time);
    expect(third.flow.time).toBeGreaterThan(second.flow.time);
    await c.waitFor(isType('end', (m) => m.id === 'a#1'));
  });

  it('accepts a scenario already read, and removes its socket file on close', async () => {
    const { scenario } = parseScenario(scenarioText([flowLine(0, { id: 'x', token: CURL_A })]), 'inline.ndjson');
    const demo = await startDemoExtension({ scenario });
    const c = await TestClient.open(demo.socketPath);
    await c.waitFor(isType('flow', (m) => m.flow.id === 'x'));
    c.close();
    expect(existsSync(demo.socketPath)).toBe(true);
    await demo.close();
    expect(existsSync(demo.socketPath)).toBe(false);
  });

  it('refuses a speed that is not a positive number', async () => {
    await expect(startDemoExtension({ scenario: 'default', speed: 0 })).rejects.toThrow(/speed/);
    await expect(startDemoExtension({ scenario: 'default', speed: Number.NaN })).rejects.toThrow(/speed/);
  });
});
