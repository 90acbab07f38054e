// A source's connection status in words and colour: never silent about a lost extension.
import type { ConnectionStatus } from '../source/types.js';
import { clean } from './format.js';

export function statusText(status: ConnectionStatus, now: number): { text: string; color: string } {
  switch (status.state) {
    case 'connecting':
      return { text: status.attempt > 1 ? `connecting (attempt ${status.attempt})…` : 'connecting…', color: 'yellow' };
    case 'connected':
      return { text: 'connected', color: 'green' };
    case 'reconnecting': {
      const secs = Math.max(Math.ceil((status.retryAt - now) / 1000), 0);
      return { text: `reconnecting in ${secs}s (${clean(status.reason)})`, color: 'yellow' };
    }
    case 'disconnected':
      return { text: `disconnected: ${clean(status.reason)}`, color: 'red' };
    case 'version-mismatch':
      return { text: `disconnected: the extension speaks protocol v${status.theirs}, flowtop speaks v${status.ours}`, color: 'red' };
  }
}
