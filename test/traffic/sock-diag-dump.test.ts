import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SockDiagDumper, TCP_STATE, parseInetDiagMessage, type InetSocket } from '../../src/native/linux/sock-diag-dump.js';
import { parseProcNet, parseProcNetLine, readProcNet } from '../../src/native/linux/proc-net.js';
import { parseAddress } from '../../src/net/address.js';
import { waitFor } from '../monitor/helpers/wait.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

async function tcpPair(host: string): Promise<{ server: Server; client: Socket; accepted: Socket }> {
  const server = createServer();
  let accepted: Socket | undefined;
  server.on('connection', (s) => (accepted = s));
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as { port: number }).port;
  const client = connect(port, host);
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const acc = await waitFor('accepted socket', () => accepted);
  cleanup.push(() => {
    client.destroy();
    acc.destroy();
    server.close();
  });
  return { server, client, accepted: acc };
}

function ownSocketInodes(): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

const byPorts = (list: InetSocket[], localPort: number, remotePort: number): InetSocket | undefined =>
  list.find((s) => s.local.port === localPort && s.remote.port === remotePort);

describe('SockDiagDumper', () => {
  it('lists both ends of a loopback TCP connection with uid, inode, cookie, and byte counters that follow the traffic', async () => {
    const { client, accepted } = await tcpPair('127.0.0.1');
    const diag = new SockDiagDumper();
    cleanup.push(() => diag.close());
    const before = diag.dumpAll();
    const c = byPorts(before, client.localPort!, client.remotePort!)!;
    const a = byPorts(before, accepted.localPort!, accepted.remotePort!)!;
    expect(c).toMatchObject({ protocol: 'tcp', family: 'ipv4', state: TCP_STATE.ESTABLISHED, uid: process.getuid!(), local: { address: '127.0.0.1' }, rx: 0, tx: 0 });
    expect(a.state).toBe(TCP_STATE.ESTABLISHED);
    const mine = ownSocketInodes();
    expect(mine.has(c.inode)).toBe(true);
    expect(mine.has(a.inode)).toBe(true);
    expect(c.cookie).toBeGreaterThan(0);
    expect(c.cookie).not.toBe(a.cookie);
    // The listener is there too, in state LISTEN.
    expect(before.some((s) => s.state === TCP_STATE.LISTEN && s.local.port === client.remotePort)).toBe(true);

    let received = 0;
    accepted.on('data', (d: Buffer) => (received += d.length));
    client.write(Buffer.alloc(150_000, 1));
    await waitFor('server to read 150000 bytes', () => received === 150_000);
    const after = await waitFor('client counters to reach 150000', () => {
      const list = diag.dumpAll();
      const cc = byPorts(list, client.localPort!, client.remotePort!);
      return cc && cc.tx === 150_000 ? list : undefined;
    });
    expect(byPorts(after, accepted.localPort!, accepted.remotePort!)!.rx).toBe(150_000);
    expect(byPorts(after, client.localPort!, client.remotePort!)!.rx).toBe(0);
  });

  it('finds IPv6 and connected UDP sockets', async () => {
    const { client } = await tcpPair('::1');
    const udp = createSocket('udp4');
    cleanup.push(() => udp.close());
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve, reject) => udp.connect(9, '127.0.0.1', (e?: Error) => (e ? reject(e) : resolve())));
    const diag = new SockDiagDumper();
    cleanup.push(() => diag.close());
    const list = diag.dumpAll();
    expect(byPorts(list, client.localPort!, client.remotePort!)).toMatchObject({ family: 'ipv6', local: { address: '::1' }, remote: { address: '::1' } });
    const u = byPorts(list, udp.address().port, 9)!;
    expect(u).toMatchObject({ protocol: 'udp', family: 'ipv4', state: 1, remote: { address: '127.0.0.1', port: 9 } });
    expect(u.rx).toBeUndefined();
    expect(ownSocketInodes().has(u.inode)).toBe(true);
    const exact = diag.lookup({
      protocol: 'udp',
      local: { address: parseAddress('127.0.0.1')!, port: udp.address().port },
      remote: { address: parseAddress('127.0.0.1')!, port: 9 },
    });
    expect(exact?.inode).toBe(u.inode);
  });

  it('looks one TCP socket up exactly, with counters, and reports a missing one as undefined', async () => {
    const { client, accepted } = await tcpPair('127.0.0.1');
    const diag = new SockDiagDumper();
    cleanup.push(() => diag.close());
    let received = 0;
    accepted.on('data', (d: Buffer) => (received += d.length));
    client.write(Buffer.alloc(4096));
    await waitFor('4096 bytes read', () => received === 4096);
    const tuple = {
      protocol: 'tcp' as const,
      local: { address: parseAddress('127.0.0.1')!, port: accepted.localPort! },
      remote: { address: parseAddress('127.0.0.1')!, port: accepted.remotePort! },
    };
    expect(diag.lookup(tuple)).toMatchObject({ rx: 4096, tx: 0, state: TCP_STATE.ESTABLISHED });
    expect(diag.lookup({ ...tuple, remote: { ...tuple.remote, port: 1 } })).toBeUndefined();
    expect(() => diag.lookup({ ...tuple, remote: { address: Buffer.alloc(16), port: 1 } })).toThrow(/different families/);
  });

  it('skips malformed replies instead of trusting them', () => {
    expect(parseInetDiagMessage(Buffer.alloc(71), 'tcp')).toBeUndefined();
    const bad = Buffer.alloc(72);
    bad[0] = 7; // not AF_INET / AF_INET6
    expect(parseInetDiagMessage(bad, 'tcp')).toBeUndefined();
    const ok = Buffer.alloc(72 + 8);
    ok[0] = 2;
    ok.writeUInt16LE(200, 72); // an attribute claiming 200 bytes in an 8-byte tail
    ok.writeUInt16LE(2, 74);
    expect(parseInetDiagMessage(ok, 'tcp')).toMatchObject({ family: 'ipv4', local: { address: '0.0.0.0' } });
    expect(parseInetDiagMessage(ok, 'tcp')!.rx).toBeUndefined();
  });
});

describe('parsers never throw on garbage', () => {
  it('inet_diag replies and /proc/net lines, 50,000 random inputs each', () => {
    let seed = 0x9e3779b9;
    const rand = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const real = '   0: 0100007F:0035 0200007F:A2F4 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1';
    for (let i = 0; i < 50_000; i++) {
      const bytes = Buffer.alloc(Math.floor(rand() * 400));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      if (bytes.length > 0) bytes[0] = rand() < 0.5 ? 2 : 10; // reach past the family check
      const parsed = parseInetDiagMessage(bytes, rand() < 0.5 ? 'tcp' : 'udp');
      if (parsed) expect(parsed.rx === undefined || Number.isFinite(parsed.rx)).toBe(true);
      const chars = real.split('');
      for (let f = 0; f < 3; f++) chars[Math.floor(rand() * chars.length)] = String.fromCharCode(32 + Math.floor(rand() * 95));
      const line = rand() < 0.2 ? chars.slice(0, Math.floor(rand() * chars.length)).join('') : chars.join('');
      const s = parseProcNetLine(line, 'tcp', 'ipv4');
      if (s) expect(s.local.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    }
  });
});

describe('/proc/net fallback', () => {
  it('parses real lines: IPv4 and IPv6 words in host order', () => {
    // Captured from /proc/net/tcp and /proc/net/tcp6 on x86_64 (little-endian).
    const v4 = '   0: 0100007F:0035 0200007F:A2F4 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 20 4 30 10 -1';
    expect(parseProcNetLine(v4, 'tcp', 'ipv4')).toEqual({
      protocol: 'tcp', family: 'ipv4', state: 1, local: { address: '127.0.0.1', port: 53 }, remote: { address: '127.0.0.2', port: 41716 }, uid: 1000, inode: 123456,
    });
    const v6 = '   1: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:C350 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0';
    expect(parseProcNetLine(v6, 'tcp', 'ipv6')).toMatchObject({ local: { address: '::1', port: 8080 }, remote: { address: '::ffff:127.0.0.1', port: 50000 }, state: 10, inode: 777 });
  });

  it('skips malformed lines and counts them', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      'garbage',
      '   1: 0100007G:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   2: 0100007F:35 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   3: 00000000000000000000000001000000:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
      '   4: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     -1        0 1 1',
      '',
    ].join('\n');
    const r = parseProcNet(text, 'tcp', 'ipv4');
    expect(r.sockets).toHaveLength(1);
    expect(r.malformed).toBe(5);
  });

  it('sees the same live sockets as the netlink dump', async () => {
    const { client } = await tcpPair('127.0.0.1');
    const diag = new SockDiagDumper();
    cleanup.push(() => diag.close());
    const fromNetlink = byPorts(diag.dumpAll(), client.localPort!, client.remotePort!)!;
    const fromProc = byPorts(readProcNet().sockets, client.localPort!, client.remotePort!)!;
    expect(fromProc).toMatchObject({ inode: fromNetlink.inode, uid: fromNetlink.uid, state: fromNetlink.state, local: fromNetlink.local, remote: fromNetlink.remote });
  });
});
