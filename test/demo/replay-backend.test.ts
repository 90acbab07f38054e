// The replay backend resolves recorded tokens to their recorded attributions and says so for others.
import { describe, expect, it } from 'vitest';
import { createReplayBackend, UNRECORDED_TOKEN_MESSAGE } from '../../src/attribution/replay-backend.js';
import type { Attribution } from '../../src/attribution/types.js';
import { ATTRIBUTIONS, CURL_A, DAEMON, GONE, TOOL, UNRECORDED } from './fixtures.js';

const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, 'base64'));

describe('replay backend', () => {
  const backend = createReplayBackend(new Map(Object.entries(ATTRIBUTIONS)));

  it('answers each token with its recorded attribution, in order', async () => {
    expect(backend.kind).toBe('replay');
    const results = await backend.resolve([bytes(TOOL), bytes(CURL_A), bytes(DAEMON), bytes(GONE)]);
    expect(results.map((a) => [a.trust, a.name])).toEqual([
      ['secure', 'dropzone-sync'],
      ['secure', 'curl'],
      ['insecure', 'trustd'],
      ['gone', undefined],
    ]);
    expect(results[2]?.reason).toMatchObject({ errno: 'EPERM', code: 100_001 });
  });

  it('reports a token the recording does not know as insecure, never a guess from its PID', async () => {
    const [unknown] = await backend.resolve([bytes(UNRECORDED)]);
    expect(unknown).toEqual({ trust: 'insecure', reason: { call: 'replay lookup', message: UNRECORDED_TOKEN_MESSAGE } });
    expect(UNRECORDED_TOKEN_MESSAGE).toMatch(/recording has no attribution/);
  });

  it('hands out copies: changing a result does not change the recording', async () => {
    const [first] = (await backend.resolve([bytes(CURL_A)])) as [Attribution];
    first.name = 'changed';
    const [again] = await backend.resolve([bytes(CURL_A)]);
    expect(again?.name).toBe('curl');
  });

  it('takes the token bytes, wherever they sit in a larger buffer', async () => {
    const raw = Buffer.from(CURL_A, 'base64');
    const big = new Uint8Array(raw.length + 8);
    big.set(raw, 4);
    const [result] = await backend.resolve([big.subarray(4, 4 + raw.length)]);
    expect(result?.name).toBe('curl');
  });
});
