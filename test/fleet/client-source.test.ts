// The fleet client against a real nats-server and a stand-in agent that speaks the wire exactly as
// docs/fleet.md says: hosts found in the hosts bucket, their events from the stream, the snapshot
// merged with the replay, requests to the flow's own host (retried with the same ref), bad lines
// reported and skipped, a host that stops announcing itself shown as gone.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { createFlowStore, type FlowStore } from '../../src/app/store.js';
import { openFleet, type FleetSource } from '../../src/fleet/fleet-source.js';
import { natsLinkConfig } from '../../src/fleet/connect-options.js';
import { mergeSources } from '../../src/source/merge.js';
import { flowPhase } from '../../src/state/derive.js';
import type { TableState } from '../../src/state/types.js';
import { skipWithoutNats, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestAgent, flowOf, type TestAgentOptions } from './helpers/test-agent.js';

const skip = skipWithoutNats();
let server: NatsServer;
const agents: TestAgent[] = [];
const fleets: FleetSource[] = [];
const stores: FlowStore[] = [];
/** Every error a client's sources reported, by store (a reducer step keeps only its last). */
const reported = new Map<FlowStore, string[]>();

beforeAll(async () => {
  if (!skip) server = await startNatsServer();
});
afterAll(async () => {
  for (const s of stores) s.close();
  for (const f of fleets) await f.close();
  for (const a of agents) await a.stop();
  await server?.stop();
});

async function agent(host: string, prefix: string, extra: Partial<TestAgentOptions> = {}): Promise<TestAgent> {
  const a = await TestAgent.start({ url: server.url, host, prefix, ...extra });
  agents.push(a);
  return a;
}

function client(prefix: string, over: { replayMs?: number; announceIntervalMs?: number; timeoutMs?: number } = {}): FlowStore {
  const fleet = openFleet({
    link: natsLinkConfig('', { nats: server.url, 'nats-prefix': prefix })!,
    user: 'alice',
    replayMs: over.replayMs ?? 60_000,
    announceIntervalMs: over.announceIntervalMs ?? 5_000,
    retryMs: 200,
    request: { timeoutMs: over.timeoutMs ?? 1_000, tries: 3, retryPauseMs: 100 },
  });
  fleets.push(fleet);
  const merged = mergeSources([]);
  merged.addFrom(fleet.sources$);
  const store = createFlowStore({ sources: merged, attributorFor: () => new Attributor(createReplayBackend(new Map())), clock: { now: () => Date.now() }, batchMs: 5 });
  stores.push(store);
  const errors: string[] = [];
  reported.set(store, errors);
  merged.events$.subscribe((e) => {
    if (e.message.type === 'error') errors.push(e.message.message);
  });
  return store;
}

async function until(store: FlowStore, what: string, ok: (s: TableState) => boolean, timeoutMs = 8_000): Promise<TableState> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = store.current();
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; rows: ${[...s.flows.keys()].join(', ')}; error: ${s.lastError?.message}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.skipIf(skip)('a late client sees what is pending now from the snapshot, the replay without ended flows, and each host apart', async () => {
  const web1 = await agent('web-1', 'late');
  const web2 = await agent('web-2', 'late');
  await web1.announce();
  await web2.announce();
  // Before the client starts: a flow that ended, a flow still pending, the same flow id on two hosts.
  await web1.publish([{ type: 'flow', flow: flowOf('x1') }]);
  await web1.publish([{ type: 'end', id: 'x1', time: Date.now() }]);
  await web1.publish([{ type: 'flow', flow: flowOf('p1', { pending: { deadline: Date.now() + 60_000 } }) }]);
  await web2.publish([{ type: 'flow', flow: flowOf('p1', { remote: { address: '10.9.9.9', port: 22 } }) }]);

  const store = client('late');
  const s = await until(store, 'the pending flow of web-1 and the flow of web-2', (t) => t.flows.has('web-1#p1') && t.flows.has('web-2#p1') && t.sources.get('web-1')?.hello !== undefined);
  expect(flowPhase(s.flows.get('web-1#p1')!)).toBe('pending');
  expect(s.flows.get('web-2#p1')!.flow.remote.address).toBe('10.9.9.9');
  // The agent's word names the program: this client never resolves another machine's token.
  expect(s.flows.get('web-1#p1')!.attribution).toMatchObject({ trust: 'secure', name: 'curl', identity: 'package:curl:/usr/bin/curl' });
  await until(store, 'the ended flow gone', (t) => !t.flows.has('web-1#x1'));
  // After the snapshot, a batch the snapshot already covered (replayed late) does not bring x1 back.
  await web1.publish([{ type: 'flow', flow: flowOf('n1') }]);
  await until(store, 'a new flow after the snapshot', (t) => t.flows.has('web-1#n1'));
  expect(store.current().flows.has('web-1#x1')).toBe(false);
  expect([...store.current().flows.keys()].filter((k) => k.startsWith('web-1#')).sort()).toEqual(['web-1#n1', 'web-1#p1']);
  expect(web1.requests.filter((r) => r.message.type === 'snapshot').map((r) => r.user)).toEqual(['alice']);
});

test.skipIf(skip)('batches that arrive while the snapshot is on its way are kept only when newer than it', async () => {
  const a = await agent('db-1', 'race', { snapshotDelayMs: 400 });
  await a.announce();
  await a.publish([{ type: 'flow', flow: flowOf('old') }]);
  await a.publish([{ type: 'end', id: 'old', time: Date.now() }]);
  const store = client('race');
  await until(store, 'the snapshot request', () => a.requests.some((r) => r.message.type === 'snapshot'));
  // Published after the snapshot was taken, reaching the client before its (delayed) reply.
  await a.publish([{ type: 'flow', flow: flowOf('new', { pending: { deadline: Date.now() + 60_000 } }) }]);
  const s = await until(store, 'the flow newer than the snapshot', (t) => t.flows.has('db-1#new') && t.sources.get('db-1')?.rules.known === true);
  expect(flowPhase(s.flows.get('db-1#new')!)).toBe('pending');
  expect(s.flows.has('db-1#old')).toBe(false);
});

test.skipIf(skip)('a verdict goes to the flow\'s own host, is retried with the same ref, and is applied once', async () => {
  const a = await agent('app-1', 'verdict');
  // Its first answer is lost on the way: the agent applied the verdict, the client hears nothing.
  const b = await agent('app-2', 'verdict', { loseFirstVerdictReply: true });
  await a.announce();
  await b.announce();
  await a.publish([{ type: 'flow', flow: flowOf('f1', { pending: { deadline: Date.now() + 60_000 } }) }]);
  await b.publish([{ type: 'flow', flow: flowOf('f1', { pending: { deadline: Date.now() + 60_000 } }) }]);
  const store = client('verdict', { timeoutMs: 300 });
  await until(store, 'both pending flows', (t) => t.flows.has('app-1#f1') && t.flows.has('app-2#f1') && t.sources.get('app-2')?.status.state === 'connected');
  expect(store.send('app-2', { type: 'verdict', id: 'f1', action: 'allow', remember: 'once' })).toEqual({ ok: true });
  const s = await until(store, 'the verdict applied on app-2', (t) => flowPhase(t.flows.get('app-2#f1')!) === 'allowed');
  await until(store, 'the retry', () => b.requests.filter((r) => r.message.type === 'verdict').length >= 2);
  expect(flowPhase(s.flows.get('app-1#f1')!)).toBe('pending');
  const verdicts = b.requests.filter((r) => r.message.type === 'verdict').map((r) => r.message as { ref?: string });
  expect(verdicts.length).toBe(2);
  expect(verdicts[0]!.ref).toBeDefined();
  expect(verdicts[1]!.ref).toBe(verdicts[0]!.ref);
  expect(b.applied.size).toBe(1);
  expect(a.requests.filter((r) => r.message.type === 'verdict')).toEqual([]);
});

test.skipIf(skip)('a bad line is reported and skipped; a host that stops announcing is gone; a host that cannot answer is said in words', async () => {
  const a = await agent('edge-1', 'bad', { answer: false });
  await a.announce();
  await a.publish([], '{"type":"flow","flow":{"id":"b1"}}\nnot json\n' + JSON.stringify({ type: 'flow', flow: flowOf('good') }) + '\n');
  const store = client('bad', { announceIntervalMs: 300, timeoutMs: 200 });
  const errors = reported.get(store)!;
  await until(store, 'the good flow', (t) => t.flows.has('edge-1#good'));
  expect(store.current().flows.has('edge-1#b1')).toBe(false);
  // Nobody answers the snapshot request on edge-1: said in words, with what to check.
  await until(store, 'the missing snapshot said', () => errors.some((e) => /did not answer the snapshot request .*no agent answers for edge-1.*--nats/.test(e))).catch((e: Error) => {
    throw new Error(`${e.message}\nerrors: ${errors.join('\n')}`);
  });
  expect(errors.filter((e) => /skipped a bad line from edge-1/.test(e)).length).toBeGreaterThan(0);
  await until(store, 'edge-1 gone', (t) => t.sources.get('edge-1')?.status.state === 'disconnected', 5_000);
  expect(store.current().sources.get('edge-1')!.status).toMatchObject({ reason: expect.stringMatching(/not heard from since .*agents refresh every 300 ms/) });
  expect(store.send('edge-1', { type: 'verdict', id: 'good', action: 'block', remember: 'once' })).toMatchObject({ ok: false, error: expect.stringMatching(/edge-1 is gone/) });
});

test.skipIf(skip)('a host that keeps announcing is not called gone while the client\'s watch of the hosts bucket lags, and takes a verdict', async () => {
  const a = await agent('edge-2', 'lag');
  await a.announce();
  const announcer = setInterval(() => void a.announce().catch(() => undefined), 100);
  try {
    await a.publish([{ type: 'flow', flow: flowOf('p1', { pending: { deadline: Date.now() + 60_000 } }) }]);
    // Gone after 3 intervals unseen: 0.9 s.
    const store = client('lag', { announceIntervalMs: 300 });
    await until(store, 'the pending flow', (t) => t.flows.has('edge-2#p1') && t.sources.get('edge-2')?.status.state === 'connected');
    const states: string[] = [];
    const watching = store.source('edge-2')!.status$.subscribe((s) => states.push(`${s.state}${'reason' in s ? `: ${s.reason}` : ''}`));
    // The client's watch loses its consumer, as when the server holding it dies: it hears nothing
    // until the library notices missed heartbeats (10 s) and makes it again; the bucket is current.
    const jsm = await jetstreamManager(a.nc);
    const bucketStream = `KV_${a.names.hostsBucket}`;
    const watchers = await jsm.consumers.list(bucketStream).next();
    expect(watchers.length).toBeGreaterThan(0);
    for (const c of watchers) await jsm.consumers.delete(bucketStream, c.name);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(store.send('edge-2', { type: 'verdict', id: 'p1', action: 'block', remember: 'once' })).toEqual({ ok: true });
    await until(store, 'the verdict applied', (t) => flowPhase(t.flows.get('edge-2#p1')!) === 'blocked');
    watching.unsubscribe();
    expect(states).toEqual(['connected']);
  } finally {
    clearInterval(announcer);
  }
});
