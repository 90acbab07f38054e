// Exact sock_diag lookups against real loopback sockets of this process.
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import dgram from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import { once } from 'node:events';
import { SockDiag, addressBytes } from '../../src/native/linux/sock-diag.js';
import { buildAttribute, parseAttributes, parseMessages, buildMessage } from '../../src/native/linux/netlink.js';

const linux = process.platform === 'linux';

function ownSocketInodes(): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch { /* fd closed meanwhile */ }
  }
  return out;
}

describe('netlink parsing', () => {
  it('stops at a truncated message or attribute instead of reading past the end', () => {
    const msg = buildMessage(20, 1, 7, buildAttribute(1, Buffer.from([1, 2, 3, 4])), buildAttribute(2, Buffer.from([9])));
    expect(parseMessages(msg)).toHaveLength(1);
    expect(parseMessages(msg, msg.length - 1)).toHaveLength(0);
    const attrs = parseAttributes(msg, 16);
    expect([...attrs.keys()]).toEqual([1, 2]);
    const bad = Buffer.from(msg);
    bad.writeUInt16LE(200, 16 + 8); // second attribute claims 200 bytes
    expect([...parseAttributes(bad, 16).keys()]).toEqual([1]);
    const lying = Buffer.from(msg);
    lying.writeUInt32LE(3, 0); // header shorter than itself
    expect(parseMessages(lying)).toHaveLength(0);
  });
});

describe.skipIf(!linux)('sock_diag exact lookup', () => {
  it('finds a connected TCP socket by its 4-tuple: inode, uid, cookie', async () => {
    const server = net.createServer((s) => s.on("error", () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    const diag = new SockDiag();
    try {
      const tuple = {
        protocol: 'tcp' as const,
        local: { address: addressBytes('127.0.0.1'), port: client.localPort! },
        remote: { address: addressBytes('127.0.0.1'), port },
      };
      const info = diag.lookup(tuple);
      expect(info).toBeDefined();
      expect(ownSocketInodes().has(info!.inode)).toBe(true);
      expect(info!.uid).toBe(process.getuid!());
      expect(info!.state).toBe(1);
      expect(info!.cookie).toBeGreaterThan(0n);
      // the same tuple again: the same socket, the same cookie
      expect(diag.lookup(tuple)!.cookie).toBe(info!.cookie);
      // a tuple nobody uses: not found, no exception
      expect(diag.lookup({ ...tuple, remote: { ...tuple.remote, port: 1 } })).toBeUndefined();
    } finally {
      diag.close();
      client.destroy();
      server.close();
    }
  });

  it('finds a UDP socket in the receive direction', async () => {
    const receiver = dgram.createSocket('udp4');
    receiver.bind(0, '127.0.0.1');
    await once(receiver, 'listening');
    const sender = dgram.createSocket('udp4');
    sender.bind(0, '127.0.0.1');
    await once(sender, 'listening');
    const diag = new SockDiag();
    try {
      const info = diag.lookup({
        protocol: 'udp',
        local: { address: addressBytes('127.0.0.1'), port: sender.address().port },
        remote: { address: addressBytes('127.0.0.1'), port: receiver.address().port },
      });
      expect(info).toBeDefined();
      expect(ownSocketInodes().has(info!.inode)).toBe(true);
    } finally {
      diag.close();
      receiver.close();
      sender.close();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('SOCK_DESTROY makes the owner fail at once', async () => {
    const server = net.createServer((s) => s.on("error", () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    const failed = new Promise<string>((resolve) => client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? '')));
    const diag = new SockDiag();
    try {
      const destroyed = diag.destroy({
        protocol: 'tcp',
        local: { address: addressBytes('127.0.0.1'), port: client.localPort! },
        remote: { address: addressBytes('127.0.0.1'), port },
      });
      expect(destroyed).toBe(true);
      try {
        client.write('x');
      } catch (e) {
        client.emit('error', e);
      }
      expect(await failed).toBe('ECONNABORTED');
    } finally {
      diag.close();
      server.close();
    }
  });

  it('parses IPv6 text into the kernel layout', () => {
    expect(addressBytes('::1').toString('hex')).toBe('00000000000000000000000000000001');
    expect(addressBytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(addressBytes('fe80::1:2').toString('hex')).toBe('fe800000000000000000000000010002');
  });
});
