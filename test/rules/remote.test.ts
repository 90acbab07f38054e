import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { RemoteRules } from '../../src/rules/remote.js';
import { tempDir } from './helpers.js';

let server: Server | undefined;
const peers = new Set<import('node:net').Socket>();
afterEach(async () => {
  for (const peer of peers) peer.destroy();
  peers.clear();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A Unix socket server that answers each connection with `onConnect`. */
async function listen(onConnect: (socket: import('node:net').Socket) => void): Promise<string> {
  const path = join(tempDir(), 's.sock');
  server = createServer((socket) => {
    peers.add(socket);
    onConnect(socket);
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  return path;
}

describe('the one-shot rules client', () => {
  it('reports no agent when nothing listens', async () => {
    expect(await RemoteRules.connect(join(tempDir(), 'missing.sock'))).toMatchObject({ kind: 'absent' });
  });

  it('a peer that closes before its hello is an error naming the socket', async () => {
    const path = await listen((s) => s.end('not json\n'));
    await expect(RemoteRules.connect(path)).rejects.toThrow(`the extension at ${path} closed the connection before its hello`);
  });

  it('a peer that never says hello times out with a clear error', async () => {
    const path = await listen(() => undefined);
    const error = await RemoteRules.connect(path, { timeoutMs: 200 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe(`the extension at ${path} sent no hello within 200 ms`);
  });

  it('a peer speaking another protocol version is refused with both versions', async () => {
    const path = await listen((s) => s.write(`${JSON.stringify({ type: 'hello', protocol: 2, extension: { name: 'x', version: '9' }, platform: 'linux', host: 'h', capabilities: ['rules'], tokenKind: 'replay' })}\n`));
    await expect(RemoteRules.connect(path)).rejects.toThrow('speaks protocol 2; this flowtop speaks 1');
  });

  it('an agent that stops answering a request: timeout, not a hang', async () => {
    const path = await listen((s) => s.write(`${JSON.stringify({ type: 'hello', protocol: 1, extension: { name: 'x', version: '1' }, platform: 'linux', host: 'h', capabilities: ['rules'], tokenKind: 'replay' })}\n`));
    const outcome = await RemoteRules.connect(path, { timeoutMs: 200 });
    if (outcome.kind !== 'connected') throw new Error(outcome.kind);
    await expect(outcome.client.list()).rejects.toThrow(`the agent at ${path} sent no rule list within 200 ms`);
    outcome.client.close();
  });
});
