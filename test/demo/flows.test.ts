// The demo's flow state machine without sockets or timers: what each input broadcasts.
import { describe, expect, it } from 'vitest';
import { DemoFlows, replayId } from '../../src/demo/flows.js';
import type { ScenarioFlow } from '../../src/demo/scenario.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { ATTRIBUTIONS, CURL_A, CURL_B, DAEMON, GONE, TOOL } from './fixtures.js';

function flow(id: string, token: string | undefined, extra: Partial<ScenarioFlow> = {}): ScenarioFlow {
  return {
    id, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
    local: { address: '192.168.1.42', port: 50_001 }, remote: { address: '140.82.121.6', port: 443 },
    ...(token ? { token } : {}), ...extra,
  };
}

function machine(speed = 1): DemoFlows {
  return new DemoFlows({ attributions: new Map(Object.entries(ATTRIBUTIONS)), defaultAction: 'allow', speed });
}

const types = (messages: ExtensionMessage[]): string[] => messages.map((m) => m.type);

describe('demo flow state machine', () => {
  it('holds a pending flow until its deadline, scaled by the speed', () => {
    const m = machine(4);
    const out = m.start(flow('p', TOOL, { pending: { deadlineMs: 8_000, default: 'block' } }), 0, 1_000);
    expect(out.deadlines).toEqual([{ id: 'p', deadline: 3_000 }]);
    expect(m.pendingIds()).toEqual(['p']);
    // Recorded traffic of a held flow is not played.
    expect(m.bytes([{ id: 'p', rx: 5, tx: 5 }], 0, 1_500).broadcast).toEqual([]);
    const decided = m.deadline('p', 3_000);
    expect(decided.broadcast).toEqual([
      { type: 'verdict', id: 'p', time: 3_000, verdict: { action: 'block', by: 'default' } },
      { type: 'end', id: 'p', time: 3_000, reason: 'blocked (default action at the deadline)' },
    ]);
    // A second deadline for the same flow (a stale timer) does nothing.
    expect(m.deadline('p', 3_001).broadcast).toEqual([]);
  });

  it('keys a remembered rule on the responsible app for a helper, and on the token for "process"', () => {
    const m = machine();
    m.start(flow('via', CURL_B, { appToken: CURL_A, pending: { deadlineMs: 60_000 } }), 0, 0);
    const out = m.verdict({ type: 'verdict', id: 'via', action: 'allow', remember: 'process' }, 10);
    const added = out.broadcast.find((x) => x.type === 'rule-changed');
    expect(added).toMatchObject({ op: 'added', rule: { action: 'allow', duration: { kind: 'process', token: CURL_A } } });
    // Same app instance, another helper: decided; another instance of the same program: not.
    const same = m.start(flow('same', TOOL, { appToken: CURL_A, pending: { deadlineMs: 60_000 } }), 0, 20);
    expect(same.broadcast[0]).toMatchObject({ type: 'flow', flow: { verdict: { action: 'allow', by: 'rule' } } });
    const other = m.start(flow('other', CURL_B, { pending: { deadlineMs: 60_000 } }), 0, 30);
    expect(other.deadlines).toHaveLength(1);
  });

  it('scopes a rule to the remote endpoint when asked', () => {
    const m = machine();
    m.start(flow('a', CURL_A, { remoteHost: { name: 'api.github.com', source: 'extension' }, pending: { deadlineMs: 60_000 } }), 0, 0);
    const out = m.verdict({ type: 'verdict', id: 'a', action: 'block', remember: 'always', scope: 'endpoint' }, 1);
    expect(out.broadcast.find((x) => x.type === 'rule-changed')).toMatchObject({ rule: { endpoint: { host: 'api.github.com', port: 443 }, protocol: 'tcp' } });
    const elsewhere = m.start(flow('b', CURL_B, { remote: { address: '1.1.1.1', port: 443 } }), 0, 2);
    expect(types(elsewhere.broadcast)).toEqual(['flow']);
    const same = m.start(flow('c', CURL_B, { remoteHost: { name: 'API.GitHub.com', source: 'dns' } }), 0, 3);
    expect(types(same.broadcast)).toEqual(['flow', 'rule-changed', 'end']);
  });

  it('honours a remembered verdict\'s duration and scope: 1 h on the domain, until restart on the port', () => {
    const m = machine();
    m.start(flow('a', CURL_A, { remoteHost: { name: 'api.github.com', source: 'extension' }, pending: { deadlineMs: 60_000 } }), 0, 0);
    const hour = m.verdict({ type: 'verdict', id: 'a', action: 'block', remember: 'always', scope: 'domain', forMs: 3_600_000 }, 1_000);
    expect(hour.broadcast.find((x) => x.type === 'rule-changed')).toMatchObject({ rule: { endpoint: { domain: 'github.com' }, duration: { kind: 'until', until: 3_601_000 } } });
    // Another host of the domain is blocked while the hour lasts, and waits again after it.
    expect(types(m.start(flow('b', CURL_B, { remoteHost: { name: 'codeload.github.com', source: 'dns' } }), 0, 2_000).broadcast)).toEqual(['flow', 'rule-changed', 'end']);
    expect(m.start(flow('c', CURL_B, { remoteHost: { name: 'codeload.github.com', source: 'dns' }, pending: { deadlineMs: 60_000 } }), 0, 3_602_000).deadlines).toHaveLength(1);
    m.start(flow('d', CURL_A, { remote: { address: '140.82.121.6', port: 22 }, pending: { deadlineMs: 60_000 } }), 0, 0);
    const session = m.verdict({ type: 'verdict', id: 'd', action: 'allow', remember: 'always', scope: 'port', session: true }, 1);
    expect(session.broadcast.find((x) => x.type === 'rule-changed')).toMatchObject({ rule: { endpoint: { port: 22 }, session: true, duration: { kind: 'always' } } });
  });

  it('remembers an unverified (insecure) process only as this instance, and a gone one not at all', () => {
    const m = machine();
    m.start(flow('d', DAEMON, { pending: { deadlineMs: 60_000 } }), 0, 0);
    const always = m.verdict({ type: 'verdict', id: 'd', action: 'allow', remember: 'always' }, 1);
    expect(types(always.broadcast)).toEqual(['verdict']); // decided once…
    expect(always.error).toMatchObject({ code: 'not-supported', message: expect.stringMatching(/not verified/) }); // …and said why no rule
    m.start(flow('d2', DAEMON, { pending: { deadlineMs: 60_000 } }), 0, 2);
    const instance = m.verdict({ type: 'verdict', id: 'd2', action: 'allow', remember: 'process' }, 3);
    expect(instance.broadcast.find((x) => x.type === 'rule-changed')).toMatchObject({ rule: { duration: { kind: 'process', token: DAEMON } } });
    expect(m.start(flow('d3', DAEMON, { pending: { deadlineMs: 60_000 } }), 0, 4).deadlines).toEqual([]);

    m.start(flow('g', GONE, { pending: { deadlineMs: 60_000 } }), 0, 0);
    const gone = m.verdict({ type: 'verdict', id: 'g', action: 'block', remember: 'always' }, 1);
    expect(types(gone.broadcast)).toEqual(['verdict', 'end']);
    expect(gone.error).toMatchObject({ code: 'not-supported', message: expect.stringMatching(/could not be identified/) });
  });

  it('an identity rule never matches a flow whose process could not be identified', () => {
    const m = machine();
    m.addRule({ action: 'block', duration: { kind: 'always' }, identity: { kind: 'sha256', value: 'ab'.repeat(32) } }, 0);
    expect(types(m.start(flow('g', GONE), 0, 1).broadcast)).toEqual(['flow']);
    expect(types(m.start(flow('n', undefined, { ownerError: 'no owner' }), 0, 1).broadcast)).toEqual(['flow']);
    expect(types(m.start(flow('t', TOOL), 0, 1).broadcast)).toEqual(['flow', 'rule-changed', 'end']);
  });

  it('a block rule wins over an equally specific allow rule', () => {
    const m = machine();
    m.addRule({ action: 'allow', duration: { kind: 'always' }, endpoint: { port: 443 } }, 0);
    const block = m.addRule({ action: 'block', duration: { kind: 'always' }, endpoint: { port: 443 } }, 0).broadcast[0];
    const out = m.start(flow('x', CURL_A), 0, 1);
    expect(out.broadcast[0]).toMatchObject({ flow: { verdict: { action: 'block', ruleId: block?.type === 'rule-changed' ? block.rule.id : '' } } });
  });

  it('tells the snapshot the flows as they are now, and forgets ended ones', () => {
    const m = machine();
    m.start(flow('open', CURL_A), 0, 0);
    m.start(flow('held', TOOL, { pending: { deadlineMs: 1_000 } }), 0, 0);
    m.bytes([{ id: 'open', rx: 10, tx: 1 }], 0, 5);
    m.start(flow('done', CURL_B), 0, 0);
    m.end('done', 0, 6);
    const snapshot = m.snapshot(7);
    expect(types(snapshot)).toEqual(['rules', 'flow', 'flow', 'bytes']);
    expect(snapshot.flatMap((x) => (x.type === 'flow' ? [x.flow.id] : []))).toEqual(['open', 'held']);
    expect(snapshot[3]).toEqual({ type: 'bytes', counters: [{ id: 'open', rx: 10, tx: 1 }], time: 7 });
  });

  it('ends the flows a pass left open when the loop starts over', () => {
    const m = machine();
    m.start(flow('forever', CURL_A), 0, 0);
    m.start(flow('waiting', TOOL, { pending: { deadlineMs: 60_000 } }), 0, 0);
    const next = m.start(flow('forever', CURL_A), 1, 10);
    expect(next.broadcast).toEqual([
      { type: 'end', id: 'forever', time: 10, reason: 'the recording starts over' },
      { type: 'end', id: 'waiting', time: 10, reason: 'the recording starts over' },
      expect.objectContaining({ type: 'flow', flow: expect.objectContaining({ id: 'forever#1' }) }),
    ]);
    expect(m.snapshot(11).flatMap((x) => (x.type === 'flow' ? [x.flow.id] : []))).toEqual(['forever#1']);
  });

  it('names later loop passes apart', () => {
    expect(replayId('a', 0)).toBe('a');
    expect(replayId('a', 3)).toBe('a#3');
    const m = machine();
    m.start(flow('a', CURL_A), 0, 0);
    m.end('a', 0, 1);
    m.start(flow('a', CURL_A), 1, 2);
    expect(m.end('a', 1, 3).broadcast).toEqual([{ type: 'end', id: 'a#1', time: 3 }]);
  });
});
