import { describe, expect, it } from 'vitest';
import { ListenerIndex, isFlowSocket } from '../../src/monitor/classify.js';
import type { InetSocket } from '../../src/native/linux/sock-diag-dump.js';

const sock = (over: Partial<InetSocket>): InetSocket => ({
  protocol: 'tcp', family: 'ipv4', state: 1, uid: 1000, inode: 1,
  local: { address: '127.0.0.1', port: 40000 }, remote: { address: '127.0.0.1', port: 8080 }, ...over,
});

describe('which sockets are flows', () => {
  it.each<[string, Partial<InetSocket>, boolean]>([
    ['an established TCP socket', {}, true],
    ['a connecting TCP socket', { state: 2 }, true],
    ['a TCP socket whose peer closed (CLOSE_WAIT)', { state: 8 }, true],
    ['a listener', { state: 10, remote: { address: '0.0.0.0', port: 0 } }, false],
    ['a bound, unconnected TCP socket (CLOSE)', { state: 7 }, false],
    ['a socket its program closed (inode 0)', { state: 4, inode: 0 }, false],
    ['a connected UDP socket', { protocol: 'udp', remote: { address: '10.0.0.1', port: 53 } }, true],
    ['an unconnected UDP socket', { protocol: 'udp', state: 7, remote: { address: '0.0.0.0', port: 0 } }, false],
  ])('%s', (_label, over, expected) => {
    expect(isFlowSocket(sock(over))).toBe(expected);
  });
});

describe('direction', () => {
  const listeners = new ListenerIndex([
    sock({ state: 10, local: { address: '0.0.0.0', port: 8080 }, remote: { address: '0.0.0.0', port: 0 } }),
    sock({ state: 10, family: 'ipv6', local: { address: '::', port: 9090 }, remote: { address: '::', port: 0 } }),
    sock({ state: 10, local: { address: '127.0.0.2', port: 7070 }, remote: { address: '0.0.0.0', port: 0 } }),
    sock({ protocol: 'udp', state: 7, local: { address: '0.0.0.0', port: 443 }, remote: { address: '0.0.0.0', port: 0 } }),
  ]);
  it('is inbound for a socket accepted from a local listener (same address or the wildcard)', () => {
    expect(listeners.directionOf(sock({ local: { address: '10.1.1.1', port: 8080 }, remote: { address: '10.9.9.9', port: 50000 } }))).toBe('inbound');
    expect(listeners.directionOf(sock({ family: 'ipv6', local: { address: '::ffff:127.0.0.1', port: 9090 } }))).toBe('inbound');
    expect(listeners.directionOf(sock({ local: { address: '127.0.0.2', port: 7070 } }))).toBe('inbound');
    expect(listeners.directionOf(sock({ protocol: 'udp', local: { address: '192.0.2.2', port: 443 } }))).toBe('inbound');
  });
  it('is outbound otherwise: a client connecting to a local server is outbound', () => {
    expect(listeners.directionOf(sock({ local: { address: '127.0.0.1', port: 40000 }, remote: { address: '127.0.0.1', port: 8080 } }))).toBe('outbound');
    expect(listeners.directionOf(sock({ local: { address: '127.0.0.3', port: 7070 } }))).toBe('outbound'); // listener bound to another address
    expect(listeners.directionOf(sock({ protocol: 'udp', local: { address: '192.0.2.2', port: 8080 } }))).toBe('outbound'); // TCP listener, UDP socket
  });
});
