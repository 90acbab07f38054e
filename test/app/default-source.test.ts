// `flowtop` with no --socket chooses the default socket itself: it uses it only when an extension
// there greets this user; a socket left by an agent that is gone, or an agent that refuses this user,
// gives the passive monitor (this machine's real connections) and says why, instead of a screen that
// retries forever or only shows an error.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExtensionServer } from '../../src/protocol/server.js';
import { openSources, type OpenedSources } from '../../src/app/setup.js';
import { testHello } from './helpers/test-extension.js';
import { natsLinkConfig } from '../../src/fleet/connect-options.js';

const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-default-'));
  dirs.push(dir);
  return join(dir, 'flowtop.sock');
}

async function open(path: string): Promise<OpenedSources> {
  const opened = await openSources({ sockets: [] }, {}, path);
  cleanups.push(() => opened.close());
  return opened;
}

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the default socket, chosen without --socket', () => {
  it('is used when the extension there says hello', async () => {
    const path = socketPath();
    const server = new ExtensionServer({ path, hello: testHello() });
    await server.listen();
    cleanups.push(() => server.close());
    const opened = await open(path);
    expect(opened.sources.map((s) => s.id)).toEqual([path]);
    expect(opened.note).toBeUndefined();
  });

  it('no socket file: the monitor, saying so', async () => {
    const path = socketPath();
    const opened = await open(path);
    expect(opened.sources.map((s) => s.id)).toEqual(['monitor']);
    expect(opened.note).toBe(`no extension socket at ${path}: showing this machine's connections with the passive monitor`);
    expect(opened.banner).toBeUndefined();
  });

  it('a socket file nobody listens on (an agent that is gone left it): the monitor, not endless reconnecting', async () => {
    const path = socketPath();
    // a listener killed with SIGKILL leaves its socket file behind, as a killed agent does
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => holder.stdout.once('data', () => r()));
    holder.kill('SIGKILL');
    await new Promise<void>((r) => holder.once('exit', () => r()));
    expect(existsSync(path)).toBe(true);
    const opened = await open(path);
    expect(opened.sources.map((s) => s.id)).toEqual(['monitor']);
    expect(opened.note).toMatch(/^nothing is listening on .*flowtop\.sock \(an agent that is no longer running left it\): showing this machine's connections/);
  });

  it('an agent that refuses this user: the monitor, and a standing line saying how to join its group', async () => {
    const path = socketPath();
    const server = new ExtensionServer({ path, hello: testHello(), authorizePeer: () => 'not in group flowtop' });
    await server.listen();
    cleanups.push(() => server.close());
    const opened = await open(path);
    expect(opened.sources.map((s) => s.id)).toEqual(['monitor']);
    expect(opened.note).toMatch(/the agent at .* refused this user: showing this machine's connections with the passive monitor/);
    expect(opened.banner).toMatch(/sudo usermod -aG flowtop \$USER/);
  });

  it('something that is not a flowtop extension: the monitor, saying what it sent', async () => {
    const path = socketPath();
    const other = createServer((c) => c.end('SSH-2.0-OpenSSH_9.2\r\n'));
    await new Promise<void>((r) => other.listen(path, r));
    cleanups.push(() => new Promise<void>((r) => other.close(() => r())));
    const opened = await open(path);
    expect(opened.sources.map((s) => s.id)).toEqual(['monitor']);
    expect(opened.note).toMatch(/does not speak the flowtop protocol/);
  });

  it('with --nats and the agent on this machine not watched, a failed NATS connect says the agent may hold it', async () => {
    const path = socketPath();
    const server = new ExtensionServer({ path, hello: testHello() });
    await server.listen();
    cleanups.push(() => server.close());
    // Nothing listens on port 1: the connect is refused, as an agent's reject rule refuses it.
    const fleet = { link: natsLinkConfig('', { nats: 'nats://127.0.0.1:1' })!, user: 'dave', replayMs: 0 };
    const watching = async (sockets: string[]): Promise<string> => {
      const opened = await openSources({ sockets, fleet }, {}, path);
      cleanups.push(() => opened.close());
      const reasons: string[] = [];
      const sub = opened.merged.statuses$.subscribe((all) => {
        for (const s of all) if (s.status.state === 'reconnecting') reasons.push(s.status.reason);
      });
      cleanups.push(() => sub.unsubscribe());
      const deadline = Date.now() + 10_000;
      while (reasons.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return reasons[0] ?? '(no reconnecting status)';
    };
    expect(await watching([])).toBe(`connection refused; the flowtop agent on this machine may be holding it for a verdict or blocking it: add --socket ${path} to see it and allow it`);
    // Watched here already (--socket): its flows are on screen, nothing to add.
    expect(await watching([path])).toBe('connection refused');
  });
});
