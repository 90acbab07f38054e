// Picks the attribution backend for the tokens an extension sends (hello.tokenKind), at run time.
// A platform layer that is missing or cannot load here becomes a backend that answers `insecure` with
// the reason in plain words — flows are still shown, never verified, and nothing crashes.
import type { TokenKind } from '../protocol/messages.js';
import type { Attribution, AttributionBackend } from './types.js';

export interface SelectOptions {
  /** Recorded attributions (the demo's scenario). */
  replay?: AttributionBackend;
  /** The host platform; tests pass another one. */
  platform?: NodeJS.Platform;
}

export function selectBackend(tokenKind: TokenKind, options: SelectOptions = {}): AttributionBackend {
  const platform = options.platform ?? process.platform;
  switch (tokenKind) {
    case 'replay':
      return options.replay ?? unavailableBackend('replay', 'this source replays a recording, but no recorded attributions were loaded');
    case 'linux-pidfd-v1':
      if (platform !== 'linux') return unavailableBackend('linux', `Linux process tokens can only be verified on the Linux machine that made them (this is ${platform})`);
      return lazyBackend('linux', async () => (await import('../native/linux/backend.js')).createLinuxBackend());
    case 'darwin-audit-token':
      if (platform !== 'darwin') return unavailableBackend('darwin', `macOS audit tokens can only be verified on the Mac that made them (this is ${platform})`);
      return lazyBackend('darwin', async () => (await import('../native/darwin/backend.js')).createDarwinBackend());
    default:
      return unavailableBackend('replay', `unknown token kind ${JSON.stringify(String(tokenKind))}: this version of flowtop cannot verify it`);
  }
}

/** A backend that verifies nothing and says why, for every token. */
export function unavailableBackend(kind: AttributionBackend['kind'], message: string): AttributionBackend {
  const answer: Attribution = { trust: 'insecure', reason: { call: 'select backend', message } };
  return { kind, resolve: async (tokens) => tokens.map(() => ({ ...answer, reason: { ...answer.reason! } })) };
}

/** Loads the platform module on first use; if it cannot load, every answer carries that error. */
function lazyBackend(kind: AttributionBackend['kind'], load: () => Promise<AttributionBackend>): AttributionBackend {
  let loading: Promise<AttributionBackend> | undefined;
  let loaded: AttributionBackend | undefined;
  let closed = false;
  return {
    kind,
    async resolve(tokens) {
      if (closed) return unavailableBackend(kind, 'the attribution backend was closed').resolve(tokens);
      loading ??= load()
        .then((backend) => {
          loaded = backend;
          if (closed) backend.close?.();
          return backend;
        })
        .catch((error: unknown) => unavailableBackend(kind, `the ${kind} attribution layer could not load: ${error instanceof Error ? error.message : String(error)}`));
      return (await loading).resolve(tokens);
    },
    close() {
      closed = true;
      loaded?.close?.();
    },
  };
}
