// The attribution backend of a recording: tokens resolve to the attributions the recording shipped with.
// The demo extension's processes are not real, so their identities travel with the scenario; a client
// resolving through this backend cannot tell it from a native one.
import type { Attribution, AttributionBackend } from './types.js';

/** Said for a token the recording has no attribution for (never guessed from its PID). */
export const UNRECORDED_TOKEN_MESSAGE = 'the recording has no attribution for this token';

export function createReplayBackend(records: ReadonlyMap<string, Attribution>): AttributionBackend {
  // Keyed by the token's bytes in canonical base64, so a differently padded spelling of the same bytes
  // still finds its record.
  const byToken = new Map<string, Attribution>();
  for (const [token, attribution] of records) byToken.set(canonicalBase64(token), attribution);

  return {
    kind: 'replay',
    async resolve(tokens: readonly Uint8Array[]): Promise<Attribution[]> {
      return tokens.map((bytes) => {
        const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
        const recorded = byToken.get(key);
        // A copy: callers may keep and decorate results without changing the recording.
        return recorded ? structuredClone(recorded) : unrecorded();
      });
    },
  };
}

function unrecorded(): Attribution {
  return {
    trust: 'insecure',
    reason: { call: 'replay lookup', message: UNRECORDED_TOKEN_MESSAGE },
  };
}

function canonicalBase64(token: string): string {
  return Buffer.from(token, 'base64').toString('base64');
}
