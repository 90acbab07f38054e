// A three-node NATS cluster with the node the client is connected to killed mid-run: the client
// fails over to the others (learnt from the cluster, not given: plain links are allowed here with
// --nats-insecure, as over TLS; a plain link without it follows no server a node announces), keeps
// reading the stream and the hosts, and its verdict still reaches the host.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { createFlowStore, type FlowStore } from '../../src/app/store.js';
import { openFleet, type FleetSource } from '../../src/fleet/fleet-source.js';
import { natsLinkConfig } from '../../src/fleet/connect-options.js';
import { mergeSources } from '../../src/source/merge.js';
import { flowPhase } from '../../src/state/derive.js';
import type { TableState } from '../../src/state/types.js';
import { skipWithoutNats, startNatsCluster, type NatsServer } from './helpers/nats-server.js';
import { TestAgent, flowOf } from './helpers/test-agent.js';

const skip = skipWithoutNats();
let nodes: NatsServer[] = [];
let agent: TestAgent | undefined;
let fleet: FleetSource | undefined;
let store: FlowStore | undefined;

beforeAll(async () => {
  if (!skip) nodes = await startNatsCluster(3);
}, 60_000);
afterAll(async () => {
  store?.close();
  await fleet?.close();
  await agent?.stop();
  for (const n of nodes) await n.stop();
});

async function until(what: string, ok: (s: TableState) => boolean, timeoutMs: number): Promise<TableState> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = store!.current();
    if (ok(s)) return s;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; rows: ${[...s.flows.keys()].join(', ')}; error: ${s.lastError?.message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.skipIf(skip)('the client fails over when its node dies, and keeps seeing and deciding', async () => {
  const [first, ...others] = nodes;
  // The agent knows the two other nodes; the client only the first (the rest it learns from it).
  // A new cluster elects its JetStream leader first: until then the API times out.
  for (let tries = 0; !agent; tries++) {
    try {
      agent = await TestAgent.start({ url: others.map((n) => n.url), host: 'app-1', prefix: 'clu', replicas: 3 });
    } catch (error) {
      if (tries >= 10) throw error;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  await agent.announce();
  await agent.publish([{ type: 'flow', flow: flowOf('before') }]);
  fleet = openFleet({ link: natsLinkConfig('', { nats: first!.url, 'nats-prefix': 'clu', 'nats-insecure': true })!, user: 'dave', replayMs: 60_000, retryMs: 300, request: { timeoutMs: 1_000, tries: 5, retryPauseMs: 300 } });
  const merged = mergeSources([]);
  merged.addFrom(fleet.sources$);
  store = createFlowStore({ sources: merged, attributorFor: () => new Attributor(createReplayBackend(new Map())), clock: { now: () => Date.now() }, batchMs: 5 });
  await until('the first flow', (s) => s.flows.has('app-1#before') && s.sources.get('app-1')?.status.state === 'connected', 15_000);

  await first!.stop();
  const announcer = setInterval(() => void agent!.announce().catch(() => undefined), 500);
  try {
    // Published after the node died: the client reads it through another node.
    // (The stream's leader may be moving: the agent publishes again until it is stored, as an agent does.)
    for (let tries = 0; ; tries++) {
      try {
        await agent.publish([{ type: 'flow', flow: flowOf('after', { pending: { deadline: Date.now() + 60_000 } }) }]);
        break;
      } catch (error) {
        if (tries >= 30) throw error;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    // (the client's consumer is made again after 10 s of silence; under a full test run's load the
    // stream's new leader has taken 20 s more)
    await until('the flow published after the node died', (s) => s.flows.has('app-1#after'), 40_000);
    expect(store.send('app-1', { type: 'verdict', id: 'after', action: 'block', remember: 'once' })).toEqual({ ok: true });
    await until('the verdict applied', (s) => flowPhase(s.flows.get('app-1#after')!) === 'blocked', 10_000);
    expect([...agent.applied.keys()]).toEqual(['after']);
    expect(store.current().sources.get('app-1')?.status.state).toBe('connected');
  } finally {
    clearInterval(announcer);
  }
}, 90_000);

test.skipIf(skip)('a plain link without --nats-insecure follows no server a node announces: with its node gone it waits, while one allowed to fails over', async () => {
  // nodes[0] died above; the agent is on the other two. Both clients are given nodes[1] only.
  const given = nodes[1]!;
  const open = (insecure: boolean) => {
    const f = openFleet({ link: natsLinkConfig('', { nats: given.url, 'nats-prefix': 'clu', ...(insecure ? { 'nats-insecure': true } : {}) })!, user: 'erin', replayMs: 0, retryMs: 300 });
    const states: string[] = [];
    const sub = f.sources$.subscribe((s) => {
      if (s.fleet?.role === 'server') s.status$.subscribe((st) => states.push(st.state));
    });
    return { fleet: f, states, close: async () => { sub.unsubscribe(); await f.close(); } };
  };
  const plain = open(false);
  const allowed = open(true);
  try {
    const until = async (what: string, ok: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; plain: ${plain.states.join(',')}; allowed: ${allowed.states.join(',')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until('both connected', () => plain.states.at(-1) === 'connected' && allowed.states.at(-1) === 'connected', 10_000);
    await given.stop();
    await until('both lost their node', () => plain.states.includes('reconnecting') && allowed.states.includes('reconnecting'), 10_000);
    // The one allowed to follow the cluster's gossip reaches the last node…
    await until('the allowed client on the last node', () => allowed.states.at(-1) === 'connected', 15_000);
    await new Promise((r) => setTimeout(r, 2_000));
    // …the plain one knows only the node it was given, and keeps trying that.
    expect(plain.states.at(-1)).not.toBe('connected');
  } finally {
    await plain.close();
    await allowed.close();
  }
}, 60_000);
