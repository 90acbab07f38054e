import { realpathSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExtensionMessage, FlowRecord } from '../../src/protocol/messages.js';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { readStartTime } from '../../src/native/linux/token.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { createPassiveMonitor, type PassiveMonitor } from '../../src/monitor/index.js';
import { HostNameMap } from '../../src/hostnames/map.js';
import { startChild, type Child } from './helpers/children.js';
import { waitFor } from './helpers/wait.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

function child<T extends Child>(c: T): T {
  cleanup.push(() => c.kill());
  return c;
}

/** A monitor whose every message is recorded, subscribed like the TUI subscribes. */
function watch(options: Parameters<typeof createPassiveMonitor>[0] = {}): { monitor: PassiveMonitor; messages: ExtensionMessage[] } {
  const monitor = createPassiveMonitor({ intervalMs: 100, ...options });
  const messages: ExtensionMessage[] = [];
  const sub = monitor.events$.subscribe((e) => messages.push(e.message));
  cleanup.push(() => {
    sub.unsubscribe();
    monitor.close();
  });
  return { monitor, messages };
}

const flows = (messages: ExtensionMessage[]): FlowRecord[] => messages.flatMap((m) => (m.type === 'flow' ? [m.flow] : []));
const latest = (messages: ExtensionMessage[], pred: (f: FlowRecord) => boolean): FlowRecord | undefined => flows(messages).filter(pred).at(-1);

describe('passive monitor', () => {
  it('says what it is: a Linux source that cannot block', () => {
    const { messages, monitor } = watch();
    const hello = messages[0];
    expect(hello).toMatchObject({ type: 'hello', platform: 'linux', tokenKind: 'linux-pidfd-v1', mode: { passive: true } });
    expect(hello?.type === 'hello' && hello.capabilities).not.toContain('verdicts');
    expect(hello?.type === 'hello' && hello.capabilities).toContain('bytes');
    const verdict = monitor.send({ type: 'verdict', id: 'x', action: 'block', remember: 'once' });
    expect(verdict.ok).toBe(false);
    expect(verdict.error).toMatch(/sudo flowtop agent/);
  });

  it('shows a real client connection with the right process and token, counts its bytes, and ends it when it closes', async () => {
    const server = child(await startChild('server'));
    const serverPort = Number(server.ready[1]);
    const { messages } = watch();
    const client = child(await startChild('tcp-client', [String(serverPort)]));
    const clientPort = Number(client.ready[1]);

    const out = await waitFor('the client row', () => latest(messages, (f) => f.local.port === clientPort && f.remote.port === serverPort && f.token !== undefined), 10_000);
    expect(out).toMatchObject({ protocol: 'tcp', family: 'ipv4', direction: 'outbound', pid: client.pid, uid: process.geteuid!(), remote: { address: '127.0.0.1' } });
    // Born with its owner: the new process was scanned in the same poll that found its socket.
    expect(flows(messages).find((f) => f.id === out.id)?.token).toBe(out.token);
    const token = decodeLinuxToken(Buffer.from(out.token!, 'base64'))!;
    expect(token.pid).toBe(client.pid);
    expect(token.startTime).toBe(readStartTime(client.pid));

    const inbound = await waitFor('the accepted row', () => latest(messages, (f) => f.local.port === serverPort && f.remote.port === clientPort && f.token !== undefined), 10_000);
    expect(inbound).toMatchObject({ direction: 'inbound', pid: server.pid });
    // The listener itself is not a flow.
    expect(flows(messages).some((f) => f.local.port === serverPort && f.remote.port === 0)).toBe(false);

    // The attribution layer verifies the token: the client's executable, securely.
    const backend = createLinuxBackend({ thread: 'inline' });
    const [attribution] = await backend.resolve([Buffer.from(out.token!, 'base64')]);
    backend.close?.();
    expect(attribution).toMatchObject({ trust: 'secure', pid: client.pid, path: realpathSync(process.execPath) });

    client.command('send 100000');
    await waitFor('client tx 100000 and server rx 100000', () => {
      const counters = messages.flatMap((m) => (m.type === 'bytes' ? m.counters : []));
      return counters.some((c) => c.id === out.id && c.tx === 100_000) && counters.some((c) => c.id === inbound.id && c.rx === 100_000);
    }, 10_000);

    client.command('close');
    const ends = await waitFor('both rows to end', () => {
      const ended = messages.flatMap((m) => (m.type === 'end' ? [m.id] : []));
      return ended.includes(out.id) && ended.includes(inbound.id) ? ended : undefined;
    }, 10_000);
    expect(ends.filter((id) => id === out.id)).toHaveLength(1);
  });

  it('shows current connections to a late subscriber at once, as a snapshot', async () => {
    const server = child(await startChild('server'));
    const client = child(await startChild('tcp-client', [server.ready[1]!]));
    const monitor = createPassiveMonitor({ intervalMs: 60_000 });
    cleanup.push(() => monitor.close());
    const first: ExtensionMessage[] = [];
    monitor.events$.subscribe((e) => first.push(e.message)).unsubscribe();
    // Synchronously, before any timer: hello + this connection.
    expect(first[0]?.type).toBe('hello');
    expect(latest(first, (f) => f.local.port === Number(client.ready[1]))?.pid).toBe(client.pid);
    const second: ExtensionMessage[] = [];
    monitor.events$.subscribe((e) => second.push(e.message)).unsubscribe();
    expect(latest(second, (f) => f.local.port === Number(client.ready[1]))?.pid).toBe(client.pid);
  });

  it('keeps finding owners as a known process closes and opens sockets (descriptor numbers reused)', async () => {
    const server = child(await startChild('server'));
    const { messages, monitor } = watch();
    const client = child(await startChild('tcp-client', [server.ready[1]!]));
    let port = Number(client.ready[1]);
    for (let i = 0; i < 5; i++) {
      const row = await waitFor(`row ${i}`, () => latest(messages, (f) => f.local.port === port && f.token !== undefined), 10_000);
      expect(row.pid).toBe(client.pid);
      client.command('reconnect');
      port = Number((await client.nextLine())[1]);
    }
    expect(monitor.stats().unresolved).toBe(0);
  });

  it('shows connected UDP sockets and ends them when they close', async () => {
    const { messages } = watch();
    const udp = child(await startChild('udp-client', ['9']));
    const port = Number(udp.ready[1]);
    const row = await waitFor('the UDP row', () => latest(messages, (f) => f.protocol === 'udp' && f.local.port === port && f.token !== undefined), 10_000);
    expect(row).toMatchObject({ direction: 'outbound', pid: udp.pid, remote: { address: '127.0.0.1', port: 9 } });
    udp.command('close');
    await waitFor('the UDP row to end', () => messages.some((m) => m.type === 'end' && m.id === row.id), 10_000);
  });

  it('names the remote end from the host-name map', async () => {
    const names = new HostNameMap();
    names.set('127.0.0.1', 'local.test', 'dns', 60);
    const server = child(await startChild('server'));
    const { messages } = watch({ hostNames: names });
    const client = child(await startChild('tcp-client', [server.ready[1]!]));
    const row = await waitFor('the named row', () => latest(messages, (f) => f.local.port === Number(client.ready[1])), 10_000);
    expect(row.remoteHost).toEqual({ name: 'local.test', source: 'dns' });
  });

  it('names a non-loopback remote by reverse lookup when asked to, and says so', async () => {
    const own = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4')?.address;
    if (!own) {
      console.warn('skipping: no non-loopback IPv4 address on this machine to connect to');
      return;
    }
    const asked: string[] = [];
    const server = child(await startChild('server', ['0.0.0.0']));
    const { messages } = watch({ reverseLookups: true, reverseResolver: async (address) => (asked.push(address), ['Host.Example.']) });
    const client = child(await startChild('tcp-client', [server.ready[1]!, own]));
    const row = await waitFor('the row named by reverse lookup', () => latest(messages, (f) => f.local.port === Number(client.ready[1]) && f.remoteHost !== undefined), 10_000);
    expect(row.remoteHost).toEqual({ name: 'host.example', source: 'reverse' });
    expect(asked).toContain(own);
  });

  it('works from /proc/net when netlink is not used, without byte counters', async () => {
    const server = child(await startChild('server'));
    const { messages, monitor } = watch({ forceProcNet: true });
    expect(monitor.stats().reader).toBe('proc');
    const hello = messages[0];
    expect(hello?.type === 'hello' && hello.capabilities).not.toContain('bytes');
    const client = child(await startChild('tcp-client', [server.ready[1]!]));
    const row = await waitFor('the row', () => latest(messages, (f) => f.local.port === Number(client.ready[1]) && f.token !== undefined), 10_000);
    expect(row.pid).toBe(client.pid);
    expect(row.id).toMatch(/^tcp-i\d+$/);
    client.kill();
    await waitFor('the row to end', () => messages.some((m) => m.type === 'end' && m.id === row.id), 10_000);
  });
});
