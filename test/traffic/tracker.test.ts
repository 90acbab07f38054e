import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { TrafficTracker, type TrafficUpdate } from '../../src/traffic/tracker.js';
import { openSocketReader, type SocketReader } from '../../src/traffic/reader.js';
import { startTrafficPoller } from '../../src/traffic/poller.js';
import { waitFor } from '../monitor/helpers/wait.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

function reader(forceProc = false): SocketReader {
  const r = openSocketReader({ forceProc });
  cleanup.push(() => r.close());
  return r;
}

async function tcpPair(): Promise<{ client: Socket; accepted: Socket; received: () => number }> {
  const server = createServer();
  let accepted: Socket | undefined;
  let received = 0;
  server.on('connection', (s) => {
    accepted = s;
    s.on('data', (d: Buffer) => (received += d.length));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const acc = await waitFor('accepted', () => accepted);
  cleanup.push(() => {
    client.destroy();
    acc.destroy();
    server.close();
  });
  return { client, accepted: acc, received: () => received };
}

const spec = (id: string, s: Socket) => ({
  id,
  protocol: 'tcp' as const,
  local: { address: s.localAddress!, port: s.localPort! },
  remote: { address: s.remoteAddress!, port: s.remotePort! },
});

describe.each(['lookup', 'dump'] as const)('TrafficTracker (%s)', (strategy) => {
  it('reports counters that grow with the traffic, only when they change, and the end when the socket closes', async () => {
    const { client, accepted, received } = await tcpPair();
    const tracker = new TrafficTracker(reader(), { strategy });
    tracker.track(spec('out', client));
    tracker.track(spec('in', accepted));
    expect(tracker.poll()).toMatchObject({ method: strategy, counters: [], ended: [] });

    client.write(Buffer.alloc(64_000));
    await waitFor('64000 bytes read', () => received() === 64_000);
    accepted.write(Buffer.alloc(1000));
    const update = await waitFor('both counters', () => {
      const u = tracker.poll();
      return u.counters.length > 0 ? u : undefined;
    });
    const counters = new Map<string, { rx: number; tx: number }>(update.counters.map((c) => [c.id, c]));
    // Either both moved in this poll or the second one comes next: poll until both are seen.
    await waitFor('final counters', () => {
      for (const c of tracker.poll().counters) counters.set(c.id, c);
      return counters.get('out')?.tx === 64_000 && counters.get('out')?.rx === 1000 && counters.get('in')?.rx === 64_000 && counters.get('in')?.tx === 1000;
    });
    expect(tracker.poll().counters).toEqual([]); // nothing moved since

    client.destroy();
    const ends: TrafficUpdate['ended'] = [];
    await waitFor('both ends', () => {
      ends.push(...tracker.poll().ended);
      return ends.length === 2;
    });
    expect(ends.map((e) => e.id).sort()).toEqual(['in', 'out']);
    expect(ends.every((e) => e.reason === 'closed')).toBe(true);
    expect(tracker.size).toBe(0);
  });
});

describe('TrafficTracker', () => {
  it('ends a UDP flow after its idle timeout while the socket stays open, and not before', async () => {
    let now = 1_000_000;
    const udp = createSocket('udp4');
    cleanup.push(() => udp.close());
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tracker = new TrafficTracker(reader(), { now: () => now });
    // An unconnected socket talking to one peer: the socket outlives the conversation.
    tracker.track({ id: 'u', protocol: 'udp', local: { address: '127.0.0.1', port: udp.address().port }, remote: { address: '127.0.0.1', port: 5353 }, idleMs: 30_000 });
    now += 20_000;
    expect(tracker.poll().ended).toEqual([]);
    tracker.touch('u'); // a packet of the flow was seen
    now += 29_000;
    expect(tracker.poll().ended).toEqual([]);
    now += 1_000;
    expect(tracker.poll().ended).toEqual([{ id: 'u', reason: 'idle' }]);
    expect(tracker.has('u')).toBe(false);
  });

  it('ends a UDP flow at once when its socket closes', async () => {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const tracker = new TrafficTracker(reader());
    tracker.track({ id: 'u', protocol: 'udp', local: { address: '127.0.0.1', port: udp.address().port }, remote: { address: '127.0.0.1', port: 9 }, idleMs: 60_000 });
    expect(tracker.poll().ended).toEqual([]);
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    expect(tracker.poll().ended).toEqual([{ id: 'u', reason: 'closed' }]);
  });

  it('tells a new socket on the same tuple from the tracked one', async () => {
    const { client } = await tcpPair();
    const tracker = new TrafficTracker(reader());
    tracker.track({ ...spec('x', client), inode: 1 }); // an inode that is not this socket's
    expect(tracker.poll().ended).toEqual([{ id: 'x', reason: 'closed' }]);
    const viaDump = new TrafficTracker(reader(), { strategy: 'dump' });
    viaDump.track({ ...spec('y', client), inode: 1 });
    expect(viaDump.poll().ended).toEqual([{ id: 'y', reason: 'closed' }]);
  });

  it('with a grace period, waits for a socket that does not exist yet, then tracks it', async () => {
    const server = createServer((s) => s.on('error', () => {}));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const serverPort = (server.address() as { port: number }).port;
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const clientPort = (probe.address() as { port: number }).port; // free a moment ago
    await new Promise((resolve) => probe.close(resolve));
    cleanup.push(() => server.close());
    const future = { protocol: 'tcp' as const, local: { address: '127.0.0.1', port: clientPort }, remote: { address: '127.0.0.1', port: serverPort } };
    const tracker = new TrafficTracker(reader());
    const viaDump = new TrafficTracker(reader(), { strategy: 'dump' });
    viaDump.track({ id: 'waits', ...future, graceMs: 60_000 });
    expect(viaDump.poll().ended).toEqual([]);
    tracker.track({ id: 'waits', ...future, graceMs: 60_000 });
    tracker.track({ id: 'no-grace', ...future });
    expect(tracker.poll().ended).toEqual([{ id: 'no-grace', reason: 'closed' }]);
    expect(tracker.has('waits')).toBe(true);
    const client = connect({ port: serverPort, host: '127.0.0.1', localAddress: '127.0.0.1', localPort: clientPort });
    await new Promise<void>((resolve) => client.once('connect', resolve));
    cleanup.push(() => client.destroy());
    client.write(Buffer.alloc(300));
    await waitFor('its counters', () => tracker.poll().counters.some((c) => c.id === 'waits' && c.tx === 300));
    await waitFor('its counters (dump)', () => viaDump.poll().counters.some((c) => c.id === 'waits' && c.tx === 300));
    client.destroy();
    // seen once, the grace is over: its end is reported at once
    await waitFor('its end', () => tracker.poll().ended.some((e) => e.id === 'waits'));
    await waitFor('its end (dump)', () => viaDump.poll().ended.some((e) => e.id === 'waits'));
  });

  it('still sees ends through the /proc/net fallback, without counters', async () => {
    const r = reader(true);
    expect(r.kind).toBe('proc');
    const { client, received } = await tcpPair();
    const tracker = new TrafficTracker(r);
    tracker.track(spec('p', client));
    client.write(Buffer.alloc(500));
    await waitFor('read', () => received() === 500);
    expect(tracker.poll()).toMatchObject({ method: 'dump', counters: [], ended: [] });
    client.destroy();
    await waitFor('end through /proc', () => tracker.poll().ended.length === 1);
  });

  it('runs at a steady rate through startTrafficPoller', async () => {
    const { client, received } = await tcpPair();
    const tracker = new TrafficTracker(reader());
    tracker.track(spec('t', client));
    const updates: TrafficUpdate[] = [];
    const poller = startTrafficPoller(tracker, (u) => updates.push(u), { intervalMs: 50 });
    cleanup.push(() => poller.stop());
    client.write(Buffer.alloc(10_000));
    await waitFor('read', () => received() === 10_000);
    await waitFor('counter update from the timer', () => updates.some((u) => u.counters.some((c) => c.tx === 10_000)), 10_000);
    client.destroy();
    await waitFor('end from the timer', () => updates.some((u) => u.ended.some((e) => e.id === 't')), 10_000);
  });
});
