// A verdict may say who decided (`decider`): read by the protocol's decoder, bounded like a name.
import { describe, expect, it } from 'vitest';
import { decodeExtensionMessage } from '../../src/protocol/codec.js';

const verdict = (extra: Record<string, unknown>): string => JSON.stringify({ type: 'verdict', id: 'f1', time: 1, verdict: { action: 'allow', by: 'user', ...extra } });

describe('verdict.decider', () => {
  it('is kept when it is a short string', () => {
    const r = decodeExtensionMessage(verdict({ decider: 'nats:alice@n1' }));
    expect(r.ok && r.message.type === 'verdict' && r.message.verdict.decider).toBe('nats:alice@n1');
  });

  it('is refused when it is not a string or too long', () => {
    expect(decodeExtensionMessage(verdict({ decider: 7 })).ok).toBe(false);
    expect(decodeExtensionMessage(verdict({ decider: 'x'.repeat(256) })).ok).toBe(false);
  });
});
