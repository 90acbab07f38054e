// The real Security.framework / libbsm / libproc calls, on a Mac only. This is the test that proves the
// koffi declarations in src/native/darwin/bindings.ts; everywhere else it is skipped, because nothing
// in it can run off macOS (the Linux tests drive the same logic through a fake).
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AttributionBackend } from '../../src/attribution/types.js';

const onMac = process.platform === 'darwin';
const title = onMac
  ? 'real macOS calls'
  : `real macOS calls — skipped: they need macOS and this is ${process.platform}`;

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe.skipIf(!onMac)(title, () => {
  it('identifies /usr/bin/curl by its Apple designated requirement, then reports it gone after it exits', async () => {
    const { loadDarwinBindings, PROC_PIDPATHINFO_MAXSIZE } = await import('../../src/native/darwin/bindings.js');
    const { auditTokenOfPid } = await import('../../src/native/darwin/resolve.js');
    const { createDarwinBackend } = await import('../../src/native/darwin/backend.js');
    const b = loadDarwinBindings();
    const backend: AttributionBackend = createDarwinBackend(b);
    // Reads /dev/zero until killed: a live curl with no network involved.
    const curl = spawn('/usr/bin/curl', ['-s', '-o', '/dev/null', '--max-time', '120', 'file:///dev/zero'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => curl.once('exit', resolve));
    try {
      const pid = curl.pid!;
      const token = await waitFor('curl to be exec()ed', () => {
        const buffer = Buffer.alloc(PROC_PIDPATHINFO_MAXSIZE);
        const n = b.proc_pidpath(pid, buffer, buffer.length);
        return n > 0 && buffer.toString('utf8', 0, n) === '/usr/bin/curl' ? auditTokenOfPid(b, pid) : undefined;
      });
      const [a] = await backend.resolve([token]);
      expect(a).toMatchObject({ trust: 'secure', pid, path: '/usr/bin/curl', name: 'curl', signer: { kind: 'apple' } });
      expect(a!.identity).toMatch(/identifier "com\.apple\.curl" and anchor apple/);

      curl.kill('SIGKILL');
      await exited;
      const [after] = await backend.resolve([token]);
      expect(after!.trust).toBe('gone');
      expect(after!.path).toBeUndefined();
    } finally {
      curl.kill('SIGKILL');
      backend.close?.();
    }
  });

  it('identifies this test\'s own process', async () => {
    const { loadDarwinBindings } = await import('../../src/native/darwin/bindings.js');
    const { auditTokenOfPid } = await import('../../src/native/darwin/resolve.js');
    const { createDarwinBackend } = await import('../../src/native/darwin/backend.js');
    const b = loadDarwinBindings();
    const backend = createDarwinBackend(b);
    try {
      const token = auditTokenOfPid(b, process.pid);
      expect(token?.length).toBe(32);
      const [a] = await backend.resolve([token!]);
      expect(a).toMatchObject({ trust: 'secure', pid: process.pid, uid: process.geteuid!() });
      expect(realpathSync(a!.path!)).toBe(realpathSync(process.execPath));
      expect(a!.signer).toBeDefined();
      // Signed node (Developer ID, Homebrew's ad hoc, …) has a DR; an unsigned build has none.
      if (a!.signer!.kind !== 'unsigned') expect(a!.identity).toBeTruthy();
    } finally {
      backend.close?.();
    }
  });
});
