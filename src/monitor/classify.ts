// Which sockets are flows, and which way they go. Pure: decided from one dump.
// Listening TCP sockets and unconnected UDP sockets are not flows (they have no remote end); a socket
// whose local port is served by such a listener on the same address (or the wildcard) was accepted
// from it, so its flow is inbound. Everything else was connected from here: outbound.
import type { Direction } from '../protocol/messages.js';
import type { InetSocket } from '../native/linux/sock-diag-dump.js';

const TCP_CLOSE = 7;
const TCP_LISTEN = 10;

export function isFlowSocket(s: InetSocket): boolean {
  if (s.inode === 0) return false; // closed by its program; only the kernel holds it now
  // CLOSE with an owner: bound but never connected, or a connect that failed.
  if (s.protocol === 'tcp') return s.state !== TCP_LISTEN && s.state !== TCP_CLOSE;
  return s.remote.port !== 0; // a connected UDP socket
}

export class ListenerIndex {
  private readonly keys = new Set<string>();

  constructor(sockets: readonly InetSocket[]) {
    for (const s of sockets) {
      const listening = s.protocol === 'tcp' ? s.state === TCP_LISTEN : s.remote.port === 0;
      if (listening) this.keys.add(`${s.protocol}|${s.local.address}|${s.local.port}`);
    }
  }

  directionOf(s: InetSocket): Direction {
    const p = s.protocol;
    const port = s.local.port;
    const mapped = s.local.address.startsWith('::ffff:') ? s.local.address.slice(7) : undefined;
    const candidates = [s.local.address, '0.0.0.0', '::'];
    if (mapped) candidates.push(mapped);
    for (const address of candidates) if (this.keys.has(`${p}|${address}|${port}`)) return 'inbound';
    return 'outbound';
  }
}
