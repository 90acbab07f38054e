// The "no permission" path: the monitor running as an ordinary user (nobody) sees root's sockets
// with their uid and the reason it cannot name their process, and still names its own.
import { createServer, connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowRecord } from '../../src/protocol/messages.js';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { compileDriver, startDriver, type CompiledDriver } from './helpers/compiled.js';
import { waitFor } from './helpers/wait.js';

const isRoot = process.geteuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const capable = isRoot && hasSetpriv;
if (!capable && process.env.CI === 'true') {
  throw new Error('this test needs root and setpriv (util-linux) in CI: run it as root with util-linux installed');
}
if (!capable) console.warn('skipping other-user monitor test: needs root (to start a process as nobody) and setpriv');

describe.skipIf(!capable)('passive monitor as an ordinary user', () => {
  let compiled: CompiledDriver;
  beforeAll(() => {
    compiled = compileDriver();
  });
  afterAll(() => compiled?.remove());

  it("shows root's sockets with uid 0 and the no-permission reason, and its own with a token", async () => {
    // Root-owned connection held by this (root) test process.
    const server = createServer((s) => s.on('error', () => {}));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const client: Socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => client.once('connect', resolve));

    const driver = startDriver(compiled, { intervalMs: 100, connect: { host: '127.0.0.1', port } }, [
      'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--',
    ]);
    try {
      const flowsNow = (): FlowRecord[] => driver.lines.flatMap((l) => (l.type === 'flow' ? [l.flow as FlowRecord] : []));
      const rootRow = await waitFor("root's client row", () => flowsNow().find((f) => f.local.port === client.localPort && f.remote.port === port), 10_000);
      expect(rootRow.uid).toBe(0);
      expect(rootRow.token).toBeUndefined();
      expect(rootRow.pid).toBeUndefined();
      expect(rootRow.ownerError).toBe('owned by uid 0; no permission to see its process (run as root or `sudo flowtop agent`)');

      const connected = await waitFor('the driver to connect', () => driver.lines.find((l) => l.type === 'connected'), 10_000);
      const ownRow = await waitFor("the driver's own row", () => flowsNow().find((f) => f.local.port === connected.port && f.token !== undefined), 10_000);
      expect(ownRow.uid).toBe(65534);
      expect(decodeLinuxToken(Buffer.from(ownRow.token!, 'base64'))?.pid).toBe(driver.pid);
    } finally {
      driver.stop();
      client.destroy();
      server.close();
    }
  });
});
