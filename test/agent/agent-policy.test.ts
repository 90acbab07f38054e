// The agent's policy on a fake I/O record (fake-io.ts), without root: a held packet becomes one
// pending flow the clients are told of at once; a client, a rule, the deadline, a dead owner or the
// stop decides it — once, for every packet that joined it; a retransmit of a flow just decided gets
// the same answer with no new prompt; observers hear what the clients hear. The real thing in a
// namespace: verdicts.test.ts and the rest of test/agent.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attribution, AttributionBackend } from '../../src/attribution/types.js';
import type { ExtensionMessage, RuleSpec } from '../../src/protocol/messages.js';
import { Agent, type AgentOptions } from '../../src/agent/agent.js';
import type { AgentEvent, EndedFlow } from '../../src/agent/observers.js';
import { storeRuleBook } from '../../src/agent/rule-book.js';
import { LISTENERS_SLOT } from '../../src/agent/types.js';
import { RuleStore } from '../../src/rules/store.js';
import { NF_ACCEPT, NF_DROP } from '../../src/native/linux/nfqueue.js';
import { FakeIo, decidedPacket, heldPacket } from './fake-io.js';

type Verdicts = Extract<ExtensionMessage, { type: 'verdict' }>;

describe('agent policy (fake I/O)', () => {
  let dir: string;
  let store: RuleStore;
  let io: FakeIo;
  let agent: Agent;
  let events: AgentEvent[];

  async function startAgent(options: Partial<AgentOptions> = {}, rules: RuleSpec[] = []): Promise<void> {
    store = await RuleStore.open(join(dir, 'rules.json'));
    for (const spec of rules) await store.add(spec);
    io = new FakeIo();
    events = [];
    agent = new Agent({
      socketPath: join(dir, 'agent.sock'), queueNum: 7, defaultAction: 'block', timeoutMs: 5000, failOpen: true, blockMode: 'drop',
      inbound: false, rules: storeRuleBook(store), trafficIntervalMs: 1_000_000, log: () => {},
      ...options,
    }, io);
    await agent.start();
  }

  const verdictsOf = (id: string): Verdicts[] => io.broadcasts.flatMap((b) => (b.msg.type === 'verdict' && b.msg.id === id ? [b.msg] : []));
  const flowsOf = (id: string): ExtensionMessage[] => io.broadcasts.flatMap((b) => (b.msg.type === 'flow' && b.msg.flow.id === id ? [b.msg] : []));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-policy-'));
  });

  afterEach(async () => {
    await agent?.stop();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a held packet is one pending flow, told at once; a client\'s allow answers its packets once', async () => {
    await startAgent();
    const client = io.subscribe();
    const first = heldPacket('tcp', 40001, 443);
    const retry = { ...heldPacket('tcp', 40001, 443), key: first.key }; // a retransmitted SYN while it waits
    io.hold(first);
    io.hold(retry);
    expect(io.answered).toEqual([]);
    const told = io.broadcasts.filter((b) => b.msg.type === 'flow');
    expect(told).toHaveLength(1); // the retransmit joined the flow: no second row
    expect(told[0]).toMatchObject({ when: 'now', msg: { flow: { id: first.flow.id, pending: { deadline: io.clock.time + 5000 } } } });
    io.request(client, { type: 'verdict', id: first.flow.id, action: 'allow', remember: 'once' });
    expect(io.answersFor(first.packetId)).toEqual([NF_ACCEPT]);
    expect(io.answersFor(retry.packetId)).toEqual([NF_ACCEPT]);
    expect(verdictsOf(first.flow.id)).toEqual([{ type: 'verdict', id: first.flow.id, time: io.clock.time, verdict: { action: 'allow', by: 'user' } }]);
    // a second answer finds nothing pending
    io.request(client, { type: 'verdict', id: first.flow.id, action: 'allow', remember: 'once', ref: 'x' });
    expect(io.answered).toHaveLength(2);
    expect(client.replies).toMatchObject([{ code: 'not-pending', ref: 'x' }]);
    expect(agent.status().counters).toMatchObject({ decidedByUser: 2, pending: 0 });
  });

  it('nobody answers: the deadline gives the default action, with why', async () => {
    await startAgent();
    const h = heldPacket('tcp', 40002, 443);
    io.hold(h);
    io.clock.advance(4999);
    expect(io.answered).toEqual([]);
    io.clock.advance(1);
    expect(io.answersFor(h.packetId)).toEqual([NF_DROP]);
    expect(verdictsOf(h.flow.id)[0]?.verdict).toEqual({ action: 'block', by: 'default', policy: 'defaultAction', reason: 'nobody answered in time', blockMode: 'drop' });
    expect(agent.status().counters).toMatchObject({ decidedByDefault: 1, pending: 0 });
  });

  it('a retransmit of a flow just decided gets the same answer at once, with no new prompt', async () => {
    await startAgent();
    const h = heldPacket('udp', 40003, 53);
    io.hold(h);
    io.clock.advance(5000); // blocked by default
    const before = io.broadcasts.length;
    const again = { ...heldPacket('udp', 40003, 53), key: h.key };
    io.clock.advance(60_000);
    io.hold(again);
    expect(io.answersFor(again.packetId)).toEqual([NF_DROP]);
    expect(io.broadcasts.slice(before).filter((b) => b.msg.type === 'flow' && b.msg.flow.pending)).toEqual([]);
    expect(agent.status().counters.pending).toBe(0);
    // long after (the remembered decision has expired) the same 5-tuple asks again
    io.clock.advance(130_000);
    const late = { ...heldPacket('udp', 40003, 53), key: h.key };
    io.hold(late);
    expect(io.answersFor(late.packetId)).toEqual([]);
    expect(flowsOf(late.flow.id)).toHaveLength(1);
  });

  it('a rule the main thread matches (a `once` rule) decides at once, and only once', async () => {
    await startAgent({}, [{ action: 'allow', endpoint: { port: 8080 }, duration: { kind: 'once' } }]);
    const a = heldPacket('tcp', 40004, 8080);
    const b = heldPacket('tcp', 40005, 8080);
    io.hold(a, b);
    await Promise.resolve();
    expect(io.answersFor(a.packetId)).toEqual([NF_ACCEPT]);
    expect(verdictsOf(a.flow.id)[0]?.verdict).toMatchObject({ action: 'allow', by: 'rule' });
    expect(io.answersFor(b.packetId)).toEqual([]); // the rule was used up: the second waits
  });

  it('a pending flow whose process died gets the default at the next reap, with the reason', async () => {
    await startAgent({ defaultAction: 'allow' });
    const h = heldPacket('tcp', 40006, 443, { pid: 777 });
    io.hold(h);
    io.clock.advance(250);
    expect(io.answered).toEqual([]);
    io.deadOwners.set(777, 'process 777 exited while its flow waited');
    io.clock.advance(250);
    expect(io.answersFor(h.packetId)).toEqual([NF_ACCEPT]);
    expect(verdictsOf(h.flow.id)[0]?.verdict).toMatchObject({ by: 'default', reason: 'process 777 exited while its flow waited' });
  });

  it('block-unpackaged while the identity is still being verified: the deadline blocks instead of the default allow', async () => {
    await store?.close();
    store = await RuleStore.open(join(dir, 'rules.json'));
    await store.setPolicy({ ...store.policy(), blockUnpackaged: true, blockMode: 'reject' });
    await store.close();
    const pending: Attribution = { trust: 'pending' };
    const attribution: AttributionBackend = { kind: 'linux', resolve: async () => [pending] };
    await startAgent({ defaultAction: 'allow', attribution });
    const h = heldPacket('tcp', 40007, 443, { token: Buffer.alloc(24, 1).toString('base64') });
    io.hold(h);
    await new Promise((r) => setImmediate(r));
    expect(io.answered).toEqual([]);
    io.clock.advance(5000);
    expect(io.answersFor(h.packetId)).toEqual([NF_DROP]);
    expect(verdictsOf(h.flow.id)[0]?.verdict).toMatchObject({ action: 'block', policy: 'blockUnpackaged', blockMode: 'reject' });
    expect(io.destroyed).toMatchObject([{ protocol: 'tcp', local: h.flow.local, remote: h.flow.remote }]); // reject: its socket too
  });

  it('block on a live UDP flow forgets its conntrack entry and drops its next datagrams', async () => {
    await startAgent({ defaultAction: 'allow' });
    const client = io.subscribe();
    const h = heldPacket('udp', 40008, 5353);
    io.hold(h);
    io.request(client, { type: 'verdict', id: h.flow.id, action: 'allow', remember: 'once' });
    io.request(client, { type: 'verdict', id: h.flow.id, action: 'block', remember: 'once' });
    expect(io.forgotten).toEqual([{ src: h.flow.local, dst: h.flow.remote }]);
    expect(verdictsOf(h.flow.id).map((v) => v.verdict.action)).toEqual(['allow', 'block']);
    expect(io.broadcasts.find((b) => b.msg.type === 'end' && b.msg.id === h.flow.id)?.msg).toMatchObject({ reason: 'blocked while live: its next datagrams are dropped' });
    const next = { ...heldPacket('udp', 40008, 5353), key: h.key };
    io.hold(next);
    expect(io.answersFor(next.packetId)).toEqual([NF_DROP]);
  });

  it('block on a live TCP flow destroys its socket; a refusal by the kernel is said, not called "already closed"', async () => {
    await startAgent({ defaultAction: 'allow' });
    const client = io.subscribe();
    const endOf = (id: string): unknown => io.broadcasts.find((b) => b.msg.type === 'end' && b.msg.id === id)?.msg;
    const [a, b] = [heldPacket('tcp', 40012, 443), heldPacket('tcp', 40013, 443)];
    io.hold(a, b);
    for (const h of [a, b]) io.request(client, { type: 'verdict', id: h.flow.id, action: 'allow', remember: 'once' });
    io.request(client, { type: 'verdict', id: a.flow.id, action: 'block', remember: 'once' });
    expect(endOf(a.flow.id)).toMatchObject({ reason: 'blocked while live: its socket was destroyed' });
    io.destroyOutcome = { result: 'refused', errno: 'EPERM' };
    io.request(client, { type: 'verdict', id: b.flow.id, action: 'block', remember: 'once' });
    expect(endOf(b.flow.id)).toMatchObject({ reason: expect.stringMatching(/^blocked, but its socket could not be destroyed \(EPERM/) });
    expect(io.destroyed.map((d) => d.local.port)).toEqual([40012, 40013]);
  });

  it('stopping answers every pending flow with the default and removes the firewall rules', async () => {
    await startAgent();
    const h = heldPacket('tcp', 40009, 443);
    io.hold(h);
    await agent.stop();
    expect(io.answersFor(h.packetId)).toEqual([NF_DROP]);
    expect(verdictsOf(h.flow.id)[0]?.verdict).toMatchObject({ by: 'default', reason: 'the agent stopped' });
    expect(io.firewall?.removed).toBe(true);
  });

  it('flows a queue thread\'s rules decided reach the clients from its batch: verdict, rule, block mode and identity, in order', async () => {
    await startAgent();
    io.subscribe();
    const identity = { kind: 'sha256' as const, value: 'cd'.repeat(32), path: '/usr/bin/curl' };
    const allowed = decidedPacket('tcp', 40020, 80, 'r-allow', { identity });
    const rejected = decidedPacket('tcp', 40021, 81, 'r-reject', { block: 'reject', identity });
    const dropped = decidedPacket('udp', 40022, 53, 'r-drop', { block: 'drop' });
    io.decided(allowed, rejected, dropped);
    const told = io.broadcasts.flatMap((b) => (b.msg.type === 'flow' ? [b.msg.flow] : []));
    expect(told.map((x) => [x.id, x.verdict])).toEqual([
      [`q7-test-${allowed.packetId}`, { action: 'allow', by: 'rule', ruleId: 'r-allow' }],
      [`q7-test-${rejected.packetId}`, { action: 'block', by: 'rule', ruleId: 'r-reject', blockMode: 'reject' }],
      [`q7-test-${dropped.packetId}`, { action: 'block', by: 'rule', ruleId: 'r-drop', blockMode: 'drop' }],
    ]);
    expect(told[0]).toMatchObject({ identity, pid: 4242, local: { address: '10.0.0.2', port: 40020 }, remote: { address: '10.0.0.9', port: 80 } });
    // the packets were answered in the queue thread: the main thread answers nothing again
    expect(io.answered).toEqual([]);
    // the next datagram of the dropped conversation counts on its flow instead of a new row
    io.decided(decidedPacket('udp', 40022, 53, 'r-drop', { block: 'drop' }));
    expect(io.broadcasts.filter((b) => b.msg.type === 'flow')).toHaveLength(3);
  });

  it('a flow whose socket closed before its batch arrived is told whole to observers that take it, and as events to a client', async () => {
    const heard: AgentEvent[] = [];
    const whole: EndedFlow[] = [];
    await startAgent({ observers: [{ observe: (e) => heard.push(e), ended: (f) => whole.push({ ...f }) }] });
    const identity = { kind: 'sha256' as const, value: 'cd'.repeat(32), path: '/usr/bin/wget' };
    const token = Buffer.alloc(24, 9);
    io.closed.set(40030, { rx: 1200, tx: 80 });
    io.decided(decidedPacket('tcp', 40030, 443, 'r-web', { token, uid: 1000, identity }), decidedPacket('tcp', 40031, 443, 'r-web'));
    // the closed one, whole; the one still open, as a flow (it is live)
    expect(whole).toEqual([{
      time: 0, end: io.clock.now(), direction: 'outbound', protocol: 'tcp', family: 'ipv4', remote: { address: '10.0.0.9', port: 443 },
      verdict: { action: 'allow', by: 'rule', ruleId: 'r-web' }, rx: 1200, tx: 80, token: token.toString('base64'), pid: 4242, uid: 1000, identity,
    }]);
    expect(heard.map((e) => e.type === 'flow' && e.flow.local.port)).toEqual([40031]);
    // with a client subscribed, it is the client's flow, bytes and end, and the observer hears those
    const client = io.subscribe();
    io.closed.set(40032, { rx: 5, tx: 6 });
    io.decided(decidedPacket('tcp', 40032, 443, 'r-web'));
    expect(whole).toHaveLength(1);
    const told = client.sent.filter((m) => m.type === 'flow' || m.type === 'bytes' || m.type === 'end').slice(-3);
    expect(told.map((m) => m.type)).toEqual(['flow', 'bytes', 'end']);
    expect(told[1]).toMatchObject({ counters: [{ rx: 5, tx: 6 }] });
    expect(heard.slice(-3).map((e) => e.type)).toEqual(['flow', 'bytes', 'end']);
  });

  it('such a flow ends when its socket closed, as the kernel stamped it, for observers and clients alike', async () => {
    const whole: EndedFlow[] = [];
    await startAgent({ observers: [{ observe: () => {}, ended: (f) => whole.push({ ...f }) }] });
    const closedAt = io.clock.now() - 25;
    io.closed.set(40050, { rx: 10, tx: 20, closedAt });
    io.decided(decidedPacket('tcp', 40050, 443, 'r-web', { time: io.clock.now() - 40 }));
    expect(whole.map((f) => f.end)).toEqual([closedAt]);
    const client = io.subscribe();
    io.closed.set(40051, { rx: 1, tx: 2, closedAt: closedAt + 1 });
    io.decided(decidedPacket('tcp', 40051, 443, 'r-web', { time: io.clock.now() - 40 }));
    expect(client.sent.filter((m) => m.type === 'end').map((m) => m.type === 'end' && m.time)).toEqual([closedAt + 1]);
  });

  it('an observer without `ended` hears such a flow as its three events', async () => {
    const heard: AgentEvent[] = [];
    await startAgent({ observers: [{ observe: (e) => heard.push(e) }] });
    io.closed.set(40040, { rx: 1, tx: 2 });
    io.decided(decidedPacket('tcp', 40040, 443, 'r-web'));
    expect(heard.map((e) => e.type)).toEqual(['flow', 'bytes', 'end']);
  });

  it('a late subscriber\'s snapshot holds the pending flows; observers hear what clients hear', async () => {
    const heard: AgentEvent[] = [];
    await startAgent({ observers: [{ observe: (e) => heard.push(e) }] });
    // an observer counts as a listener: the queue threads publish every decided flow
    expect(Atomics.load(new BigInt64Array(io.config!.counters), LISTENERS_SLOT)).toBe(1n);
    const h = heldPacket('tcp', 40010, 443);
    io.hold(h);
    io.decided(decidedPacket('tcp', 40011, 80, 'r'));
    const client = io.subscribe();
    expect(client.sent.filter((m) => m.type === 'flow' && m.flow.id === h.flow.id)).toHaveLength(1);
    io.request(client, { type: 'verdict', id: h.flow.id, action: 'allow', remember: 'once' });
    expect(heard).toEqual(io.broadcasts.map((b) => b.msg));
    expect(heard.map((e) => e.type)).toEqual(['flow', 'flow', 'verdict']);
  });
});
