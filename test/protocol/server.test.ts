// ExtensionServer over a real Unix socket: handshake, malformed input answered with the right error
// while the connection stays up, limits, authorisation, slow clients, peer credentials.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { peerCredentials } from '../../src/native/linux/peercred.js';
import { ExtensionServer, type ExtensionServerOptions, type ServerClient } from '../../src/protocol/server.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import { connectRaw, socketDir, waitFor, type RawClient } from './wire.js';
import { flow, hello, linuxToken, rule } from './samples.js';
import { MAX_LINE_BYTES } from '../../src/protocol/messages.js';

const subscribe = `{"type":"subscribe","protocol":1,"client":{"name":"test","version":"1"}}\n`;

let dir: ReturnType<typeof socketDir>;
let server: ExtensionServer | undefined;
const received: Array<{ client: ServerClient; msg: ClientMessage }> = [];
const closedReasons: string[] = [];

beforeEach(() => {
  dir = socketDir();
  received.length = 0;
  closedReasons.length = 0;
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  dir.cleanup();
});

async function start(options: Partial<ExtensionServerOptions> = {}): Promise<ExtensionServer> {
  server = new ExtensionServer({
    path: dir.path('ext.sock'),
    hello,
    onMessage: (client, msg) => {
      received.push({ client, msg });
      // A tiny extension: answers rules-list so a test can prove the connection still works.
      if (msg.type === 'rules-list') client.send({ type: 'rules', rules: [], ...(msg.ref ? { ref: msg.ref } : {}) });
    },
    onClientClosed: (_client, reason) => closedReasons.push(reason),
    ...options,
  });
  await server.listen();
  return server;
}

async function subscribed(s: ExtensionServer): Promise<RawClient> {
  const c = await connectRaw(s.path);
  expect(await c.next()).toMatchObject({ type: 'hello', protocol: 1 });
  c.write(subscribe);
  await waitFor(() => s.clients.some((x) => x.subscribed), 5000, 'subscribe');
  return c;
}

/** Proves the connection is still served: a rules-list gets its answer. */
async function stillServed(c: RawClient): Promise<void> {
  c.write('{"type":"rules-list","ref":"alive"}\n');
  expect(await c.next()).toEqual({ type: 'rules', rules: [], ref: 'alive' });
}

describe('handshake', () => {
  test('hello on connect, snapshot after subscribe, then broadcasts; many clients', async () => {
    const s = await start({ onSubscribe: () => [flow('snap')] });
    const clients = await Promise.all([1, 2, 3].map(() => connectRaw(s.path)));
    for (const c of clients) {
      expect(await c.next()).toEqual(hello);
      c.write(subscribe);
      expect(await c.next()).toMatchObject({ type: 'flow', flow: { id: 'snap' } });
    }
    await waitFor(() => s.clients.filter((x) => x.subscribed).length === 3, 5000, 'three subscribers');
    expect(s.broadcast(flow('live'))).toBe(3);
    for (const c of clients) expect(await c.next()).toMatchObject({ type: 'flow', flow: { id: 'live' } });
  });

  test('messages broadcast soon arrive at the end of the turn, in order with those broadcast now', async () => {
    const s = await start();
    const [a, b] = [await subscribed(s), await subscribed(s)];
    await waitFor(() => s.clients.filter((x) => x.subscribed).length === 2, 5000, 'two subscribers');
    for (let i = 0; i < 200; i++) expect(s.broadcastSoon(flow(`soon${i}`))).toBe(2);
    expect(s.broadcast(flow('now'))).toBe(2);
    expect(s.broadcastSoon(flow('after'))).toBe(2);
    // nothing else is sent: 'after' must leave at the end of the turn on its own
    for (const c of [a, b]) {
      for (let i = 0; i < 200; i++) expect(await c.next()).toMatchObject({ flow: { id: `soon${i}` } });
      expect(await c.next()).toMatchObject({ flow: { id: 'now' } });
      expect(await c.next()).toMatchObject({ flow: { id: 'after' } });
    }
    await stillServed(a);
  });

  test('a message before subscribe is out-of-order and the connection is kept', async () => {
    const s = await start();
    const c = await connectRaw(s.path);
    await c.next();
    c.write('{"type":"rules-list","ref":"early"}\n');
    expect(await c.next()).toMatchObject({ type: 'error', code: 'out-of-order', ref: 'early' });
    c.write(subscribe);
    await stillServed(c);
    expect(s.broadcast(flow('x'))).toBe(1);
  });

  test('a second subscribe is out-of-order', async () => {
    const s = await start();
    const c = await subscribed(s);
    c.write(subscribe);
    expect(await c.next()).toMatchObject({ type: 'error', code: 'out-of-order' });
    await stillServed(c);
  });

  test('a protocol version mismatch is answered, then the connection is closed', async () => {
    const s = await start();
    const c = await connectRaw(s.path);
    await c.next();
    c.write('{"type":"subscribe","protocol":2,"client":{"name":"future","version":"9"}}\n');
    const error = await c.next();
    expect(error).toMatchObject({ type: 'error', code: 'version-mismatch' });
    expect(String(error['message'])).toContain('protocol 1');
    expect(String(error['message'])).toContain('2');
    await c.closed;
  });

  test('no subscribe within the limit: answered and closed', async () => {
    const s = await start({ subscribeTimeoutMs: 100 });
    const c = await connectRaw(s.path);
    await c.next();
    expect(await c.next()).toMatchObject({ type: 'error', code: 'out-of-order' });
    await c.closed;
  });
});

const tenMegabytes = Buffer.alloc(10 * 1024 * 1024, 'a');
const malformed: Array<{ name: string; input: string | Buffer; code: string; mentions?: string }> = [
  { name: 'truncated JSON', input: '{"type":"verdict","id":"f1","act\n', code: 'bad-json' },
  { name: 'wrong field type', input: '{"type":"verdict","id":5,"action":"allow","remember":"once"}\n', code: 'bad-message', mentions: 'id' },
  { name: 'wrong enum value', input: '{"type":"verdict","id":"f1","action":"maybe","remember":"once"}\n', code: 'bad-message', mentions: 'action' },
  { name: 'missing field', input: '{"type":"verdict","id":"f1","action":"allow"}\n', code: 'bad-message', mentions: 'remember' },
  { name: 'unknown type', input: '{"type":"teleport"}\n', code: 'unknown-type', mentions: 'teleport' },
  { name: 'no type', input: '{"id":"f1"}\n', code: 'bad-message', mentions: 'type' },
  { name: 'not an object', input: '[1,2,3]\n', code: 'bad-message' },
  {
    name: 'bad base64 token',
    input: `{"type":"rule-add","rule":{"action":"allow","duration":{"kind":"process","token":"not base64!"}}}\n`,
    code: 'bad-message',
    mentions: 'rule duration.token: must be the base64 token',
  },
  { name: 'oversized line', input: `{"type":"rules-list","pad":"${'x'.repeat(70 * 1024)}"}\n`, code: 'line-too-long' },
  { name: 'a 10 MB line', input: Buffer.concat([tenMegabytes, Buffer.from('\n')]), code: 'line-too-long' },
  { name: 'binary garbage', input: Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), Buffer.from('\n')]), code: 'bad-json' },
  { name: 'printable garbage', input: 'hello there\n', code: 'bad-json' },
];

describe('malformed input gets the right error and the connection is kept', () => {
  test.each(malformed)('$name → $code', async ({ input, code, mentions }) => {
    const s = await start();
    const c = await subscribed(s);
    c.write(input);
    const error = await c.next(15_000);
    expect(error).toMatchObject({ type: 'error', code });
    if (mentions) expect(String(error['message'])).toContain(mentions);
    await stillServed(c);
    expect(received.map((r) => r.msg.type)).toEqual(['rules-list']);
  });

  test('a line without a newline at the end of the stream is reported', async () => {
    const s = await start();
    const c = await subscribed(s);
    c.write('{"type":"rules-list"}');
    c.end();
    expect(await c.next()).toMatchObject({ type: 'error', code: 'incomplete-line' });
    expect(received).toEqual([]);
    await c.closed;
  });

  test('the ref of a bad message is echoed', async () => {
    const s = await start();
    const c = await subscribed(s);
    c.write('{"type":"verdict","id":"f1","action":"allow","remember":"once","scope":"process","ref":"k7"}\n');
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad-message', ref: 'k7' });
  });

  test('random bytes never stop the server from serving others', async () => {
    const s = await start();
    const victim = await subscribed(s);
    const c = await subscribed(s);
    for (let i = 0; i < 20; i++) c.write(randomBytes(1 + (i * 997) % 5000));
    c.write('\n');
    await stillServed(victim);
  });
});

describe('limits', () => {
  test('past the error limit: too-many-errors, then closed', async () => {
    const s = await start({ maxErrors: 5 });
    const c = await subscribed(s);
    c.write('nope\n'.repeat(5));
    for (let i = 0; i < 5; i++) expect(await c.next()).toMatchObject({ code: 'bad-json' });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'too-many-errors' });
    await c.closed;
    await waitFor(() => closedReasons.length === 1, 5000, 'close reason');
    expect(closedReasons[0]).toContain('too many protocol errors');
  });

  test('a client that stops reading is dropped with a reason; memory stays bounded', async () => {
    const s = await start({ maxWriteBufferBytes: 256 * 1024 });
    const c = await subscribed(s);
    c.socket.pause();
    let sent = 0;
    for (let i = 0; i < 200_000 && s.clients.length > 0; i++) {
      s.broadcast(flow(`f${i}`));
      sent++;
    }
    expect(s.clients).toHaveLength(0);
    expect(sent).toBeLessThan(200_000);
    expect(closedReasons[0]).toMatch(/too slow: \d+ bytes waiting/);
  });

  test('a client that sends requests without reading the answers stalls itself: the extension stops reading it', async () => {
    const big = { ...rule, note: 'x'.repeat(4000) };
    const s = await start({
      onMessage: (client, msg) => {
        received.push({ client, msg });
        if (msg.type === 'rules-list') client.send({ type: 'rules', rules: Array.from({ length: 15 }, (_, i) => ({ ...big, id: `r${i}` })), ...(msg.ref ? { ref: msg.ref } : {}) });
      },
    });
    const c = await subscribed(s);
    c.socket.pause();
    const request = '{"type":"rules-list"}\n'.repeat(20_000); // answers would be 1.2 GB
    c.write(request);
    await new Promise((r) => setTimeout(r, 500));
    // Only as many answers as fill the pause threshold, plus what the kernel buffers hold.
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(200);
    expect(s.clients).toHaveLength(1);
    // Reading again: the held requests are answered, in order.
    const before = received.length;
    c.socket.resume();
    await waitFor(() => received.length > before + 100, 10_000, 'more requests handled once the client reads');
  });

  test('past the bound on all clients together, the client with the most waiting is dropped', async () => {
    const s = await start({ maxTotalWriteBufferBytes: 2 * 1024 * 1024 });
    const [slow, slower, reader] = [await subscribed(s), await subscribed(s), await subscribed(s)];
    await waitFor(() => s.clients.filter((x) => x.subscribed).length === 3, 5000, 'three subscribers');
    slow.socket.pause();
    slower.socket.pause();
    let received = 0;
    reader.socket.on('data', () => received++);
    const note = 'y'.repeat(2000);
    for (let i = 0; i < 2000 && s.clients.length === 3; i++) {
      // the slower one gets a second copy of each line (a reply only it asked for)
      const line = flow(`f${i}`, { ownerError: note });
      s.broadcast(line);
      s.clients.find((x) => x.id === 'c2')?.send(line);
    }
    expect(s.clients.map((x) => x.id).sort()).toEqual(['c1', 'c3']);
    expect(closedReasons[0]).toMatch(/too slow: \d+ bytes waiting to be sent while all clients together had \d+ \(limit 2097152\)/);
    await waitFor(() => received > 0, 5000, 'the reading client to get lines');
    expect(reader.isClosed()).toBe(false);
  });

  test('lists too long for a line are split: bytes in parts, rules with continues and the ref on each', async () => {
    const counters = Array.from({ length: 5000 }, (_, i) => ({ id: `flow-${i}`, rx: 1_000_000 + i, tx: 2_000_000 + i }));
    const rules = Array.from({ length: 400 }, (_, i) => ({ ...rule, id: `r${i}`, note: 'n'.repeat(300) }));
    const s = await start({
      onSubscribe: () => [{ type: 'bytes', counters, time: 5 }],
      onMessage: (client, msg) => {
        if (msg.type === 'rules-list') client.send({ type: 'rules', rules, ...(msg.ref ? { ref: msg.ref } : {}) });
      },
    });
    const c = await connectRaw(s.path);
    await c.next();
    const raw: string[] = [];
    c.socket.on('data', (d: string) => raw.push(d));
    c.write(subscribe);
    const got: Array<{ id: string }> = [];
    while (got.length < counters.length) {
      const m = await c.next();
      expect(m['type']).toBe('bytes');
      got.push(...(m['counters'] as Array<{ id: string }>));
    }
    expect(got.map((x) => x.id)).toEqual(counters.map((x) => x.id));
    c.write('{"type":"rules-list","ref":"big"}\n');
    const parts: Array<Record<string, unknown>> = [];
    do parts.push(await c.next()); while (parts[parts.length - 1]!['continues'] === true);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p['ref']).toBe('big');
    expect(parts.flatMap((p) => (p['rules'] as Array<{ id: string }>).map((r) => r.id))).toEqual(rules.map((r) => r.id));
    for (const line of raw.join('').split('\n')) expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
  });

  test('with no client subscribed a broadcast encodes nothing (an agent with only observers pays no JSON per event)', async () => {
    const logged: string[] = [];
    const s = await start({ log: (line) => logged.push(line) });
    const connected = await connectRaw(s.path); // connected, not subscribed
    await connected.next();
    // a message that cannot be encoded would be logged if it were encoded at all
    const huge = flow('huge', { ownerError: 'z'.repeat(70_000) });
    expect(s.broadcast(huge)).toBe(0);
    expect(s.broadcastSoon(huge)).toBe(0);
    expect(logged).toEqual([]);
    const sub = await subscribed(s);
    expect(s.broadcastSoon(huge)).toBe(0);
    expect(logged.join('\n')).toMatch(/not sent: a "flow" message/);
    expect(s.broadcastSoon(flow('ok'))).toBe(1);
    expect(await sub.next()).toMatchObject({ type: 'flow', flow: { id: 'ok' } });
  });

  test('an extension callback that throws, or a message that cannot be sent, never stops the server', async () => {
    const logged: string[] = [];
    const s = await start({
      log: (line) => logged.push(line),
      onSubscribe: (client) => {
        if (client.id === 'c1') throw new Error('snapshot bug');
        return [flow('ok')];
      },
    });
    const first = await connectRaw(s.path);
    await first.next();
    first.write(subscribe);
    expect(await first.next()).toMatchObject({ type: 'error', code: 'internal', message: expect.stringContaining('snapshot bug') });
    await first.closed;
    const second = await subscribed(s);
    expect(await second.next()).toMatchObject({ type: 'flow', flow: { id: 'ok' } });
    // A single flow over the line limit cannot be split: it is skipped and logged, not thrown.
    expect(s.broadcast(flow('huge', { ownerError: 'z'.repeat(70_000) }))).toBe(0);
    expect(logged.join('\n')).toMatch(/snapshot bug[\s\S]*not sent: a "flow" message: encoded message is \d+ bytes/);
    await stillServed(second);
  });

  test('past the client limit a new connection is told why and closed; others are unaffected', async () => {
    const s = await start({ maxClients: 1 });
    const first = await subscribed(s);
    const second = await connectRaw(s.path);
    expect(await second.next()).toMatchObject({ type: 'error', code: 'internal', message: expect.stringContaining('too many clients') });
    await second.closed;
    await stillServed(first);
  });
});

describe('authorisation and peers', () => {
  test('a refused verdict gets not-authorised and the connection is kept', async () => {
    const s = await start({ authorize: (_client, msg) => (msg.type === 'verdict' ? 'only the console user may decide' : true) });
    const c = await subscribed(s);
    c.write('{"type":"verdict","id":"f1","action":"block","remember":"once","ref":"v"}\n');
    expect(await c.next()).toEqual({ type: 'error', code: 'not-authorised', message: 'only the console user may decide', ref: 'v' });
    await stillServed(c);
    expect(received.map((r) => r.msg.type)).toEqual(['rules-list']);
  });

  test('a refused subscribe closes the connection', async () => {
    const s = await start({ authorize: () => false });
    const c = await connectRaw(s.path);
    await c.next();
    c.write(subscribe);
    expect(await c.next()).toMatchObject({ type: 'error', code: 'not-authorised' });
    await c.closed;
  });

  test.runIf(process.platform === 'linux')('the peer credentials are those of the connecting process', async () => {
    const s = await start({ peerCredentials });
    await subscribed(s);
    const groups = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('Groups:'))!.slice(7).trim().split(/\s+/).filter(Boolean).map(Number);
    expect(s.clients[0]?.peer).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.(), groups });
  });

  test('the peer credentials come from the reader the extension gives; without one a client has none', async () => {
    const seen: Socket[] = [];
    const s = await start({ peerCredentials: (socket) => (seen.push(socket), { pid: 1, uid: 1234, gid: 99 }) });
    await subscribed(s);
    expect(s.clients[0]?.peer).toEqual({ pid: 1, uid: 1234, gid: 99 });
    expect(seen).toHaveLength(1);
    await s.close();
    const bare = await start({ authorizePeer: (client) => (client.peer ? true : 'who are you?') });
    const c = await connectRaw(bare.path);
    expect(await c.next()).toEqual({ type: 'error', code: 'not-authorised', message: 'who are you?' });
  });

  test('a peer refused when it connects gets one not-authorised line, no hello, and is closed', async () => {
    const s = await start({ authorizePeer: () => 'members only' });
    const c = await connectRaw(s.path);
    expect(await c.next()).toEqual({ type: 'error', code: 'not-authorised', message: 'members only' });
    await c.closed;
    await expect(c.next(200)).rejects.toThrow(/closed/);
    expect(s.clients).toHaveLength(0);
  });

  test('valid verdicts and rule changes reach the extension decoded', async () => {
    const s = await start();
    const c = await subscribed(s);
    c.write(`{"type":"verdict","id":"f1","action":"block","remember":"process","scope":"endpoint","unknownField":1}\n`);
    c.write(`{"type":"rule-add","rule":{"action":"allow","duration":{"kind":"process","token":"${linuxToken}"}},"ref":"a"}\n`);
    await waitFor(() => received.length === 2, 5000, 'two messages');
    expect(received[0]?.msg).toEqual({ type: 'verdict', id: 'f1', action: 'block', remember: 'process', scope: 'endpoint' });
    expect(received[1]?.msg).toEqual({ type: 'rule-add', rule: { action: 'allow', duration: { kind: 'process', token: linuxToken } }, ref: 'a' });
  });
});

describe('socket file', () => {
  test('a live server keeps its socket; a stale one left by a killed process is replaced', async () => {
    const path = dir.path('stale.sock');
    const first = new ExtensionServer({ path, hello });
    await first.listen();
    await expect(new ExtensionServer({ path, hello }).listen()).rejects.toThrow(/EADDRINUSE/);
    await first.close();

    // A process killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`]);
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(statSync(path).isSocket()).toBe(true);

    server = new ExtensionServer({ path, hello });
    await server.listen();
    const c = await connectRaw(path);
    expect(await c.next()).toMatchObject({ type: 'hello' });
  });

  test('a regular file at the path is never removed', async () => {
    const path = dir.path('not-a-socket');
    writeFileSync(path, 'keep me');
    await expect(new ExtensionServer({ path, hello }).listen()).rejects.toThrow(/not a socket/);
    expect(readFileSync(path, 'utf8')).toBe('keep me');
  });
});
