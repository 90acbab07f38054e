// The fleet in the TUI: frames of the real app (Root + store) over the real fleet source, a real
// nats-server and stand-in agents speaking the wire. HOST column, `host:` in the filter, a late
// client seeing a pending flow from the snapshot alone, a verdict key reaching the right host, the
// processes view across hosts, and the rules view with the fleet rules.
import '../ui/helpers/force-color.js';
import { render } from 'ink-testing-library';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { Root } from '../../src/app/Root.js';
import { createFlowStore, type FlowStore } from '../../src/app/store.js';
import { openFleet, type FleetSource } from '../../src/fleet/fleet-source.js';
import { natsLinkConfig } from '../../src/fleet/connect-options.js';
import { mergeSources } from '../../src/source/merge.js';
import { openHistorySource, type HistorySource } from '../../src/app/history-source.js';
import { setFastOutput } from '../../src/ui/fast-output.js';
import { KEY, plain, press, ready, waitForFrame } from '../ui/helpers/keys.js';
import { skipWithoutNats, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestAgent, flowOf } from './helpers/test-agent.js';

await setFastOutput(true);
const skip = skipWithoutNats();
let server: NatsServer;
const agents: TestAgent[] = [];

beforeAll(async () => {
  if (!skip) server = await startNatsServer();
});
afterAll(async () => {
  for (const a of agents) await a.stop();
  await server?.stop();
});

function startTui(prefix: string, history?: HistorySource): { instance: ReturnType<typeof render>; store: FlowStore; fleet: FleetSource; stop(): Promise<void> } {
  // No replay: what is pending can only come from each host's snapshot.
  const fleet = openFleet({ link: natsLinkConfig('', { nats: server.url, 'nats-prefix': prefix })!, user: 'carol', replayMs: 0, retryMs: 200 });
  const merged = mergeSources([]);
  merged.addFrom(fleet.sources$);
  const store = createFlowStore({ sources: merged, attributorFor: () => new Attributor(createReplayBackend(new Map())), clock: { now: () => Date.now() }, batchMs: 5, snapshotMs: 20 });
  const instance = render(<Root store={store} clock={{ now: () => Date.now() }} ascii={false} viewport={{ rows: 30, columns: 140 }} history={history} onQuit={() => undefined} />);
  return {
    instance,
    store,
    fleet,
    async stop() {
      instance.unmount();
      store.close();
      await fleet.close();
    },
  };
}

const rowOf = (frame: string, text: string): string => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';

test.skipIf(skip)('two hosts in one table: HOST column, host: filter, a pending flow from the snapshot, a verdict to its own host', async () => {
  const web1 = await TestAgent.start({ url: server.url, host: 'web-1', prefix: 'tui' });
  const web2 = await TestAgent.start({ url: server.url, host: 'web-2', prefix: 'tui' });
  agents.push(web1, web2);
  // Published before the client starts; with no replay the client learns it from the snapshots.
  await web1.publish([{ type: 'flow', flow: flowOf('w1', { remote: { address: '192.0.2.10', port: 443 } }) }]);
  await web2.publish([{ type: 'flow', flow: flowOf('w3', { remote: { address: '203.0.113.5', port: 25 } }) }]);
  await web2.publish([{ type: 'flow', flow: flowOf('w2', { remote: { address: '198.51.100.7', port: 8443 }, pending: { deadline: Date.now() + 60_000 } }) }]);
  web2.rules.push({ id: 'r-web2', action: 'block', identity: { kind: 'package', package: 'nc', value: '/usr/bin/nc' }, duration: { kind: 'always' }, created: Date.now(), hits: 0, enabled: true });
  // The agent lists the fleet rules it enforces as its own (ids `fleet:<key>`): shown once, from the bucket.
  web2.rules.push({ id: 'fleet:all.r-fleet', action: 'block', endpoint: { domain: 'tracker.example' }, duration: { kind: 'always' }, created: Date.now(), hits: 0, enabled: true });
  await web1.announce();
  await web2.announce();
  const kv = await new Kvm(web1.nc).open('tui-rules');
  await kv.put('all.r-fleet', JSON.stringify({ action: 'block', endpoint: { domain: 'tracker.example' }, duration: { kind: 'always' } }));

  const tui = startTui('tui');
  try {
    const { instance } = tui;
    let frame = await waitForFrame(instance, (f) => plain(f).includes('198.51.100.7:8443') && plain(f).includes('192.0.2.10:443'), 8_000, 'both hosts\' flows');
    expect(plain(frame)).toMatch(/fleet nats:\/\/127\.0\.0\.1:\d+ · connected · 2 hosts: 2 connected/);
    expect(plain(frame)).toMatch(/PROCESS\s+HOST\s/);
    expect(rowOf(frame, '198.51.100.7')).toMatch(/curl\s+web-2\s.*pending/);
    expect(rowOf(frame, '192.0.2.10')).toMatch(/curl\s+web-1\s/);
    await ready(instance);

    // host:web-1 keeps that host's flows (the pending flow of web-2 stays pinned: it needs an answer).
    await press(instance, '/');
    for (const ch of 'host:web-1') await press(instance, ch);
    frame = await press(instance, KEY.enter);
    expect(plain(frame)).toContain('filter "host:web-1"');
    expect(rowOf(frame, '192.0.2.10')).toContain('web-1');
    expect(plain(frame)).not.toContain('203.0.113.5');
    if (process.env['SHOW_FRAMES']) console.log(plain(frame));
    frame = await press(instance, KEY.escape, (f) => !plain(f).includes('filter "'));

    // The verdict key acts on the selected flow's own host: web-2, as NATS user carol.
    const at = plain(frame).split('\n').findIndex((l) => l.includes('198.51.100.7'));
    const first = plain(frame).split('\n').findIndex((l) => l.includes('192.0.2.10') || l.includes('198.51.100.7'));
    for (let i = first; i < at; i++) await press(instance, KEY.down);
    frame = await press(instance, 'a', (f) => rowOf(f, '198.51.100.7').includes('allowed'), 5_000);
    expect(web2.requests.filter((r) => r.message.type === 'verdict').map((r) => `${r.user} ${(r.message as { id: string }).id}`)).toEqual(['carol w2']);
    expect(web1.requests.filter((r) => r.message.type === 'verdict')).toEqual([]);

    // Processes: one row for the same code on both hosts, each host's share in its details.
    frame = await press(instance, '2', (f) => /PROCESS\s+SIGNER \/ PACKAGE\s+HOSTS/.test(plain(f)));
    expect(rowOf(frame, 'curl')).toMatch(/curl\s+package curl .*\s2\s/);
    frame = await press(instance, KEY.enter, (f) => plain(f).includes('2 run it'));
    if (process.env['SHOW_FRAMES']) console.log(plain(frame));
    expect(plain(frame)).toMatch(/web-1\s+1 live/);
    expect(plain(frame)).toMatch(/web-2\s+2 live/);
    expect(rowOf(frame, 'curl')).toMatch(/\s2\s+3\s/); // 2 PIDs: the same number on two machines is two processes
    await press(instance, KEY.escape);

    // Rules: the host's own rule and the fleet rule for every host.
    frame = await press(instance, '3', (f) => plain(f).includes('all (fleet)') && plain(f).includes('/usr/bin/nc'), 5_000);
    expect(rowOf(frame, '/usr/bin/nc')).toMatch(/block\s+web-2\s/);
    expect(rowOf(frame, 'tracker.example')).toMatch(/block\s+all \(fleet\)/);
    expect(plain(frame).split('\n').filter((l) => l.includes('tracker.example'))).toHaveLength(1);
    if (process.env['SHOW_FRAMES']) console.log(plain(frame));
    // d on the fleet rule deletes its key from the rules bucket; the row leaves.
    const lines = plain(frame).split('\n');
    const rules = lines.findIndex((l) => /^ACTION\s+HOST/.test(l.trim()) || l.includes('ACTION'));
    const target = lines.findIndex((l) => l.includes('tracker.example'));
    const selected = lines.findIndex((l, i) => i > rules && l.trim().length > 0);
    for (let i = selected; i < target; i++) await press(instance, KEY.down);
    await press(instance, 'd', (f) => plain(f).includes('Delete rule'));
    frame = await press(instance, 'y', (f) => !plain(f).includes('tracker.example'), 5_000);
    expect(plain(frame)).toContain('/usr/bin/nc');
    expect(await kv.get('all.r-fleet')).toMatchObject({ operation: 'DEL' });
  } finally {
    await tui.stop();
  }
});

test.skipIf(skip)('a host that stops announcing itself is shown gone in the header', async () => {
  const a = await TestAgent.start({ url: server.url, host: 'cache-1', prefix: 'gone' });
  agents.push(a);
  await a.announce();
  await a.publish([{ type: 'flow', flow: flowOf('c1') }]);
  // With --socket beside --nats the history view follows the local agent's hello; a fleet host's
  // hello names a file on its own machine, never read here.
  const history = openHistorySource({ flows: 'agent' }, process.env, { thread: 'inline', agentPath: '/nonexistent/flowtop-local-history.db' });
  const tui = startTui('gone', history);
  try {
    await waitForFrame(tui.instance, (f) => plain(f).includes('1 hosts') || plain(f).includes('1 host: 1 connected'), 8_000, 'the host connected');
    await new Promise((r) => setTimeout(r, 100));
    expect(history.path).toBe('/nonexistent/flowtop-local-history.db');
    await a.goodbye();
    const frame = await waitForFrame(tui.instance, (f) => plain(f).includes('1 gone (cache-1)'), 5_000, 'the host gone');
    expect(plain(frame)).toContain('0 connected');
  } finally {
    await tui.stop();
    history.close();
  }
});

test.skipIf(skip)('flows from several hosts sort by HOST: s reaches it after PROCESS, r reverses it, newest first within a host', async () => {
  const hosts = { 'db-2': await TestAgent.start({ url: server.url, host: 'db-2', prefix: 'sorth' }), 'app-1': await TestAgent.start({ url: server.url, host: 'app-1', prefix: 'sorth' }), 'cache-3': await TestAgent.start({ url: server.url, host: 'cache-3', prefix: 'sorth' }) };
  agents.push(...Object.values(hosts));
  // Ages interleave the hosts, so the default order (newest first) is not the order by host.
  const t0 = Date.now() - 60_000;
  const flows: Array<[keyof typeof hosts, string, number]> = [
    ['app-1', '192.0.2.1', 50], ['db-2', '192.0.2.2', 40], ['cache-3', '192.0.2.3', 30], ['app-1', '192.0.2.4', 20], ['db-2', '192.0.2.5', 10],
  ];
  for (const [host, address, ago] of flows) await hosts[host].publish([{ type: 'flow', flow: flowOf(`f-${address}`, { time: t0 - ago * 1000, remote: { address, port: 443 } }) }]);
  for (const a of Object.values(hosts)) await a.announce();
  const tui = startTui('sorth');
  const order = (frame: string): string[] => plain(frame).split('\n').map((l) => /(192\.0\.2\.\d)/.exec(l)?.[1]).filter((a): a is string => a !== undefined);
  const hostsInOrder = (frame: string): string[] => order(frame).map((a) => flows.find((f) => f[1] === a)![0]);
  try {
    const { instance } = tui;
    let frame = await waitForFrame(instance, (f) => order(f).length === 5, 8_000, 'the five flows');
    expect(plain(frame)).toContain('sort age');
    expect(order(frame)).toEqual(['192.0.2.5', '192.0.2.4', '192.0.2.3', '192.0.2.2', '192.0.2.1']);
    await ready(instance);
    frame = await press(instance, 's', (f) => plain(f).includes('sort trust'));
    frame = await press(instance, 's', (f) => plain(f).includes('sort process'));
    frame = await press(instance, 's', (f) => plain(f).includes('sort host'));
    if (process.env['SHOW_FRAMES']) console.log(plain(frame));
    // The HOST header carries the sort mark; rows grouped a→z by host, the newest first within each.
    expect(plain(frame)).toMatch(/PROCESS\s+HOST▼\s/);
    expect(order(frame)).toEqual(['192.0.2.4', '192.0.2.1', '192.0.2.3', '192.0.2.5', '192.0.2.2']);
    expect(hostsInOrder(frame)).toEqual(['app-1', 'app-1', 'cache-3', 'db-2', 'db-2']);
    frame = await press(instance, 'r', (f) => plain(f).includes('sort host ▲'));
    expect(hostsInOrder(frame)).toEqual(['db-2', 'db-2', 'cache-3', 'app-1', 'app-1']);
    // A flow from a new host lands in its place by host, not on top.
    await hosts['app-1'].publish([{ type: 'flow', flow: flowOf('f-new', { remote: { address: '192.0.2.6', port: 443 } }) }]);
    flows.push(['app-1', '192.0.2.6', 0]);
    frame = await waitForFrame(instance, (f) => order(f).includes('192.0.2.6'), 5_000, 'the new flow');
    expect(hostsInOrder(frame)).toEqual(['db-2', 'db-2', 'cache-3', 'app-1', 'app-1', 'app-1']);
    // The next key goes on to PID.
    frame = await press(instance, 's', (f) => plain(f).includes('sort pid'));
  } finally {
    await tui.stop();
  }
});
