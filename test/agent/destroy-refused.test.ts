// Ending a live TCP flow destroys its socket (SOCK_DESTROY). When the kernel refuses (EPERM without
// CAP_NET_ADMIN), the flow must not be reported as "its socket had already closed": the connection is
// still open, and the reason says so with the errno. Real sockets, the real netlink call, a real
// unprivileged user.
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, removeBundles } from '../native-linux/helpers.js';
import { skipUnlessCapable } from './helpers.js';

const skip = skipUnlessCapable();

interface Result {
  outcome: { result: string; errno?: string };
  reason: string;
}

function destroyAs(fixture: string, user: string[] | undefined, localPort: number, remotePort: number): Result {
  const [command, args] = user
    ? ['setpriv', [...user, process.execPath, fixture, String(localPort), String(remotePort)]]
    : [process.execPath, [fixture, String(localPort), String(remotePort)]];
  const out = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  if (out.status !== 0) throw new Error(`destroy fixture failed (${out.status}): ${out.stderr}`);
  return JSON.parse(out.stdout) as Result;
}

describe.skipIf(skip)('a live flow whose socket cannot be destroyed', () => {
  let fixture: string;
  let server: net.Server;
  beforeAll(async () => {
    fixture = await bundle('test/agent/fixtures/destroy-socket.ts', 'destroy-socket');
    server = net.createServer((s) => s.on('error', () => {})).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
  });
  afterAll(() => {
    server?.close();
    removeBundles();
  });

  it('says the kernel refused (EPERM, and why), not that the socket had closed; as root it is destroyed, then gone', async () => {
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    await new Promise((r) => client.once('connect', r));
    try {
      const nobody = destroyAs(fixture, ['--reuid=nobody', '--regid=nogroup', '--clear-groups'], client.localPort!, port);
      expect(nobody.outcome).toEqual({ result: 'refused', errno: 'EPERM' });
      expect(nobody.reason).toBe('blocked, but its socket could not be destroyed (EPERM: the agent lacks CAP_NET_ADMIN in this network namespace): the connection stays open until its program closes it');
      expect(client.destroyed).toBe(false);

      const closed = new Promise((r) => client.once('close', r));
      expect(destroyAs(fixture, undefined, client.localPort!, port)).toEqual({ outcome: { result: 'destroyed' }, reason: 'blocked while live: its socket was destroyed' });
      await closed;
      expect(destroyAs(fixture, undefined, client.localPort!, port)).toEqual({ outcome: { result: 'gone' }, reason: 'blocked while live: its socket had already closed' });
    } finally {
      client.destroy();
    }
  });
});
