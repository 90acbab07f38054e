import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/attribution/select.js';
import type { AttributionBackend } from '../../src/attribution/types.js';
import type { TokenKind } from '../../src/protocol/messages.js';
import { makeLinuxToken } from '../../src/native/linux/token.js';

describe('selectBackend', () => {
  it('answers insecure with a reason, never throws, when the platform layer is missing', async () => {
    const linuxOnMac = selectBackend('linux-pidfd-v1', { platform: 'darwin' });
    const [answer] = await linuxOnMac.resolve([Buffer.alloc(24, 1)]);
    expect(answer?.trust).toBe('insecure');
    expect(answer?.reason?.message).toMatch(/only be verified on the Linux machine/);

    const macOnLinux = await selectBackend('darwin-audit-token', { platform: 'linux' }).resolve([Buffer.alloc(32)]);
    expect(macOnLinux[0]?.reason?.message).toMatch(/audit tokens can only be verified on the Mac/);

    const noRecords = await selectBackend('replay').resolve([Buffer.alloc(4)]);
    expect(noRecords[0]?.trust).toBe('insecure');

    const unknown = await selectBackend('future-kind' as TokenKind).resolve([Buffer.alloc(4), Buffer.alloc(4)]);
    expect(unknown.map((a) => a.trust)).toEqual(['insecure', 'insecure']);
  });

  it('uses the recorded attributions for replay tokens', async () => {
    const replay: AttributionBackend = { kind: 'replay', resolve: async (t) => t.map(() => ({ trust: 'secure', name: 'curl' })) };
    expect(selectBackend('replay', { replay })).toBe(replay);
  });

  it.runIf(process.platform === 'linux')('loads the Linux layer for Linux tokens on Linux', async () => {
    const backend = selectBackend('linux-pidfd-v1');
    try {
      const [self] = await backend.resolve([makeLinuxToken(process.pid)!]);
      expect(self?.trust).toBe('secure');
      expect(self?.pid).toBe(process.pid);
    } finally {
      backend.close?.();
    }
  });
});
