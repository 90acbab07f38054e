// createSocketSource against real Unix socket servers: the handshake, status transitions in order,
// reconnect after the extension restarts, verdict round trip, a shared socket, a burst that yields.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { ExtensionServer, type ExtensionServerOptions } from '../../src/protocol/server.js';
import { createSocketSource } from '../../src/source/socket-source.js';
import type { ConnectionStatus, FlowSource, SourceEvent } from '../../src/source/types.js';
import type { HelloMessage } from '../../src/protocol/messages.js';
import { performance } from 'node:perf_hooks';
import { encodeMessage } from '../../src/protocol/codec.js';
import { flow, hello } from '../protocol/samples.js';
import { socketDir, waitFor } from '../protocol/wire.js';

let dir: ReturnType<typeof socketDir>;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  dir = socketDir();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  dir.cleanup();
});

async function extension(path: string, options: Partial<ExtensionServerOptions> = {}): Promise<ExtensionServer> {
  const s = new ExtensionServer({ path, hello, ...options });
  await s.listen();
  cleanups.push(() => s.close());
  return s;
}

/** A bare server that writes whatever the test wants on each connection. */
async function rawServer(path: string, onConnection: (socket: Socket) => void): Promise<{ server: Server; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.on('error', () => undefined);
    socket.resume(); // read (and discard) so the peer's close is noticed
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, connections: () => count };
}

function watch(source: FlowSource): { events: SourceEvent[]; statuses: ConnectionStatus[] } {
  const events: SourceEvent[] = [];
  const statuses: ConnectionStatus[] = [];
  const a = source.events$.subscribe((e) => events.push(e));
  const b = source.status$.subscribe((s) => statuses.push(s));
  cleanups.push(() => {
    a.unsubscribe();
    b.unsubscribe();
    source.close();
  });
  return { events, statuses };
}

const fast = { backoff: { initialMs: 20, maxMs: 80 } };
const states = (statuses: ConnectionStatus[]): string[] => statuses.map((s) => s.state);

describe('createSocketSource', () => {
  test('hello, snapshot and live flows arrive tagged with the source; status says connected', async () => {
    const path = dir.path('a.sock');
    const ext = await extension(path, { onSubscribe: () => [flow('snap')] });
    const source = createSocketSource(path, { id: 'agent', client: { name: 'test', version: '1' } });
    const { events, statuses } = watch(source);
    await waitFor(() => events.length === 2, 5000, 'hello and snapshot');
    await waitFor(() => ext.clients.some((c) => c.subscribed), 5000, 'subscribed');
    expect(ext.clients[0]?.info).toEqual({ name: 'test', version: '1' });
    ext.broadcast(flow('live'));
    await waitFor(() => events.length === 3, 5000, 'live flow');
    expect(events.map((e) => [e.source, e.message.type === 'flow' ? e.message.flow.id : e.message.type])).toEqual([
      ['agent', 'hello'], ['agent', 'snap'], ['agent', 'live'],
    ]);
    expect(statuses).toEqual([{ state: 'connecting', attempt: 1 }, { state: 'connected', hello }]);
  });

  test('verdict round trip on the same connection', async () => {
    const path = dir.path('v.sock');
    const ext = await extension(path, {
      onMessage: (client, msg) => {
        if (msg.type !== 'verdict') return;
        ext.broadcast({ type: 'verdict', id: msg.id, time: 5, verdict: { action: msg.action, by: 'user' } });
        client.send({ type: 'end', id: msg.id, time: 6, reason: 'blocked' });
      },
    });
    const source = createSocketSource(path);
    const { events, statuses } = watch(source);
    expect(source.send({ type: 'verdict', id: 'f1', action: 'block', remember: 'once' })).toEqual({ ok: false, error: `not connected to ${path}` });
    await waitFor(() => statuses.at(-1)?.state === 'connected', 5000, 'connected');
    expect(source.send({ type: 'verdict', id: 'f1', action: 'block', remember: 'process', scope: 'endpoint' })).toEqual({ ok: true });
    await waitFor(() => events.some((e) => e.message.type === 'end'), 5000, 'verdict answered');
    expect(events.slice(1).map((e) => e.message)).toEqual([
      { type: 'verdict', id: 'f1', time: 5, verdict: { action: 'block', by: 'user' } },
      { type: 'end', id: 'f1', time: 6, reason: 'blocked' },
    ]);
  });

  test('send refuses what the extension did not announce', async () => {
    const path = dir.path('cap.sock');
    await extension(path, { hello: { ...hello, capabilities: ['bytes'] } });
    const source = createSocketSource(path);
    const { statuses } = watch(source);
    await waitFor(() => statuses.at(-1)?.state === 'connected', 5000, 'connected');
    const result = source.send({ type: 'rule-remove', id: 'r1' });
    expect(result.ok).toBe(false);
    expect(result.error).toContain('rules');
  });

  test('reconnects after the extension restarts; statuses in order', async () => {
    const path = dir.path('r.sock');
    let ext = await extension(path);
    const source = createSocketSource(path, fast);
    const { events, statuses } = watch(source);
    await waitFor(() => statuses.at(-1)?.state === 'connected', 5000, 'first connection');
    await ext.close();
    await waitFor(() => statuses.some((s) => s.state === 'reconnecting' && s.attempt >= 2), 5000, 'failed reconnects while down');
    ext = await extension(path, { onSubscribe: () => [flow('after-restart')] });
    await waitFor(() => events.some((e) => e.message.type === 'flow'), 5000, 'flow from the restarted extension');
    expect(statuses.at(-1)).toEqual({ state: 'connected', hello });
    const seq = states(statuses);
    expect(seq.slice(0, 4)).toEqual(['connecting', 'connected', 'reconnecting', 'connecting']);
    // Every reconnecting is followed by connecting; the run ends connected.
    seq.forEach((s, i) => {
      if (s === 'reconnecting') expect(seq[i + 1]).toBe('connecting');
    });
    const firstDown = statuses.find((s) => s.state === 'reconnecting');
    expect(firstDown).toMatchObject({ reason: 'the extension closed the connection', attempt: 1 });
    const refused = statuses.filter((s) => s.state === 'reconnecting').slice(1);
    expect(refused.every((s) => s.state === 'reconnecting' && /no extension socket|nothing is listening/.test(s.reason))).toBe(true);
    // Backoff grows: the second wait is longer than the first.
    const [r1, r2] = refused as Array<Extract<ConnectionStatus, { state: 'reconnecting' }>>;
    if (r1 && r2) expect(r2.attempt).toBe(r1.attempt + 1);
  });

  test('no extension yet: reconnecting with the reason, then connected when it appears', async () => {
    const path = dir.path('late.sock');
    const source = createSocketSource(path, fast);
    const { statuses } = watch(source);
    await waitFor(() => statuses.some((s) => s.state === 'reconnecting'), 5000, 'reconnecting');
    expect(statuses[1]).toMatchObject({ state: 'reconnecting', reason: `no extension socket at ${path}`, attempt: 2 });
    const at = statuses[1] as Extract<ConnectionStatus, { state: 'reconnecting' }>;
    expect(at.retryAt).toBeGreaterThan(Date.now() - 1000);
    await extension(path);
    await waitFor(() => statuses.at(-1)?.state === 'connected', 5000, 'connected');
  });

  test('a version mismatch is reported and not retried', async () => {
    const path = dir.path('mismatch.sock');
    const future: HelloMessage = { ...hello, protocol: 2 };
    const raw = await rawServer(path, (socket) => socket.write(encodeMessage(future)));
    const source = createSocketSource(path, fast);
    const { statuses, events } = watch(source);
    await waitFor(() => statuses.at(-1)?.state === 'version-mismatch', 5000, 'mismatch');
    expect(statuses.at(-1)).toEqual({ state: 'version-mismatch', theirs: 2, ours: 1 });
    expect(events).toEqual([]);
    // Prove no retry happens: a fresh connection to the same server is counted, ours is not.
    const probe = createSocketSource(path, fast);
    const p = watch(probe);
    await waitFor(() => p.statuses.at(-1)?.state === 'version-mismatch', 5000, 'probe mismatch');
    expect(raw.connections()).toBe(2);
  });

  test('a first line that is not hello is a failed connection', async () => {
    const path = dir.path('nohello.sock');
    await rawServer(path, (socket) => socket.write(encodeMessage(flow('early'))));
    const source = createSocketSource(path, fast);
    const { statuses, events } = watch(source);
    await waitFor(() => statuses.some((s) => s.state === 'reconnecting'), 5000, 'reconnecting');
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ reason: 'the extension began with "flow" instead of hello' });
    expect(events).toEqual([]);
  });

  test('an extension that refuses the connection: its words become the reason', async () => {
    const path = dir.path('full.sock');
    await extension(path, { maxClients: 0 });
    const source = createSocketSource(path, fast);
    const { statuses } = watch(source);
    await waitFor(() => statuses.some((s) => s.state === 'reconnecting'), 5000, 'reconnecting');
    expect(statuses.find((s) => s.state === 'reconnecting')).toMatchObject({ reason: 'the extension refused the connection: too many clients (limit 0); try again later' });
  });

  test('malformed lines from the extension are reported as local errors and skipped', async () => {
    const path = dir.path('bad.sock');
    await rawServer(path, (socket) => socket.write(`${encodeMessage(hello)}{"type":"flow","flow":{}}\nnot json\n${encodeMessage(flow('ok'))}`));
    const source = createSocketSource(path, fast);
    const { events } = watch(source);
    await waitFor(() => events.length === 4, 5000, 'four events');
    expect(events.map((e) => [e.message.type, e.local ?? false])).toEqual([['hello', false], ['error', true], ['error', true], ['flow', false]]);
    expect(events[1]?.message).toMatchObject({ code: 'bad-message' });
    expect(events[2]?.message).toMatchObject({ code: 'bad-json' });
  });

  test('every subscriber shares one connection; close() disconnects', async () => {
    const path = dir.path('shared.sock');
    const closedReasons: string[] = [];
    const ext = await extension(path, { onClientClosed: (_c, reason) => closedReasons.push(reason) });
    const source = createSocketSource(path);
    const first = watch(source);
    const second: SourceEvent[] = [];
    const sub = source.events$.subscribe((e) => second.push(e));
    cleanups.push(() => sub.unsubscribe());
    await waitFor(() => first.statuses.at(-1)?.state === 'connected', 5000, 'connected');
    // Connected means the hello arrived; the subscribe that follows it may not have reached the
    // extension yet, and a broadcast goes only to subscribers.
    await waitFor(() => ext.clients.some((c) => c.subscribed), 5000, 'the extension saw the subscribe');
    ext.broadcast(flow('x'));
    await waitFor(() => second.length === 2 && first.events.length === 2, 5000, 'both see the flow');
    expect(ext.clients).toHaveLength(1);
    source.close();
    expect(first.statuses.at(-1)).toEqual({ state: 'disconnected', reason: 'closed' });
    await waitFor(() => closedReasons.length === 1, 5000, 'server saw the close');
    expect(source.send({ type: 'rules-list' })).toEqual({ ok: false, error: 'this source is closed' });
  });

  test('a 50,000-message burst arrives complete and in order, and the event loop gets turns during it', async () => {
    const path = dir.path('burst.sock');
    const total = 50_000;
    await rawServer(path, (socket) => {
      socket.write(encodeMessage(hello));
      const lines: string[] = [];
      for (let i = 0; i < total; i++) lines.push(encodeMessage(flow(`f${i}`)));
      socket.write(lines.join(''));
    });
    const source = createSocketSource(path, { sliceMs: 4 });
    const { events } = watch(source);
    // Count how many times a timer got to run while the burst was being delivered.
    let turns = 0;
    let sawPartial = false;
    const timer = setInterval(() => {
      turns++;
      const flows = events.length - 1;
      if (flows > 0 && flows < total) sawPartial = true;
    }, 1);
    cleanups.push(() => clearInterval(timer));
    await waitFor(() => events.length === total + 1, 30_000, 'the whole burst');
    const ids = events.slice(1).map((e) => (e.message.type === 'flow' ? e.message.flow.id : '?'));
    expect(ids[0]).toBe('f0');
    expect(ids.at(-1)).toBe(`f${total - 1}`);
    expect(new Set(ids).size).toBe(total);
    expect(sawPartial).toBe(true);
    expect(turns).toBeGreaterThan(1);
  });

  test('a lagging consumer makes the source stop reading: the rest waits on the extension side', async () => {
    const path = dir.path('lag.sock');
    const total = 20_000;
    let serverSide: Socket | undefined;
    const payload = encodeMessage(hello) + Array.from({ length: total }, (_, i) => encodeMessage(flow(`f${i}`))).join('');
    await rawServer(path, (socket) => {
      serverSide = socket;
      socket.write(payload);
    });
    const source = createSocketSource(path, { highWaterLines: 200, sliceMs: 2 });
    let seen = 0;
    const sub = source.events$.subscribe(() => {
      seen++;
      const until = performance.now() + 0.2; // a consumer that needs 0.2 ms per message
      while (performance.now() < until);
    });
    cleanups.push(() => {
      sub.unsubscribe();
      source.close();
    });
    await waitFor(() => seen >= 1000, 20_000, 'a thousand messages consumed');
    const stats = source.readStats();
    expect(stats.pauses).toBeGreaterThan(0);
    // Held in memory: at most the high-water mark plus one read chunk of lines (64 KiB / ~370 bytes).
    expect(stats.peakQueuedLines).toBeLessThanOrEqual(200 + Math.ceil(65536 / 300));
    // The rest of the ~7 MB waits on the extension side (kernel buffers hold only a few hundred KiB).
    expect(serverSide!.writableLength).toBeGreaterThan(payload.length / 2);
  });
});
