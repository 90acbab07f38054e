import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { run, type InspectEntry } from '../../src/commands/inspect.js';
import { UsageError } from '../../src/errors.js';

async function inspect(argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await run(argv, (text) => (out += text));
  return { code, out };
}

async function sleeper(): Promise<{ pid: number; stop: () => void }> {
  const child = spawn('/usr/bin/sleep', ['300'], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  for (;;) {
    let exe = '';
    try {
      exe = readlinkSync(`/proc/${child.pid}/exe`);
    } catch {
      exe = '';
    }
    if (exe === '/usr/bin/sleep') break;
    if (Date.now() > deadline) throw new Error('sleep did not start');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { pid: child.pid!, stop: () => void child.kill('SIGKILL') };
}

describe.runIf(process.platform === 'linux')('flowtop inspect', () => {
  it('prints token, trust, path, identity, hash, user and parents for a PID', async () => {
    const child = await sleeper();
    try {
      const { code, out } = await inspect([String(child.pid)]);
      expect(code).toBe(0);
      expect(out).toContain(`PID ${child.pid}  sleep`);
      expect(out).toMatch(/token +[0-9a-f]{48}/);
      expect(out).toContain('trust     secure');
      expect(out).toContain('path      /usr/bin/sleep');
      expect(out).toMatch(/sha256 +[0-9a-f]{64}/);
      expect(out).toMatch(/identity +(package:|sha256:)/);
      expect(out).toMatch(/parents +\d+ node/);
      expect(out).not.toContain('reason');
    } finally {
      child.stop();
    }
  });

  it('--json gives one entry per query, and --token resolves a token; a stale token says why', async () => {
    const child = await sleeper();
    let token: string;
    try {
      const first = await inspect([String(child.pid), '--json']);
      const [entry] = JSON.parse(first.out) as InspectEntry[];
      expect(entry?.attribution?.trust).toBe('secure');
      token = entry!.token!;
      const again = JSON.parse((await inspect(['--token', token, '--json'])).out) as InspectEntry[];
      expect(again[0]?.attribution?.path).toBe('/usr/bin/sleep');
    } finally {
      child.stop();
    }
    // After exit: gone with the reason in words.
    const deadline = Date.now() + 5000;
    let out = '';
    while (Date.now() < deadline) {
      out = (await inspect(['--token', token])).out;
      if (out.includes('gone')) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(out).toContain('trust     gone');
    expect(out).toMatch(/reason +the process (has )?exited/);
  });

  it('reports a missing PID with exit status 1 and still reports the others', async () => {
    const { code, out } = await inspect([String(process.pid), '4194304', '--json']);
    expect(code).toBe(1);
    const entries = JSON.parse(out) as InspectEntry[];
    expect(entries[0]?.attribution?.trust).toBe('secure');
    expect(entries[1]?.error).toContain('no process with PID 4194304');
  });

  it('rejects bad PIDs and bad tokens with a usage error that says what is expected', async () => {
    for (const argv of [['abc'], ['0'], ['-5'], ['99999999'], ['12.5'], [], ['--token', 'xyz'], ['--token', 'ab'.repeat(23)], ['--token', '0'.repeat(48)], ['--bogus']]) {
      await expect(inspect(argv)).rejects.toBeInstanceOf(UsageError);
    }
    await expect(inspect(['abc'])).rejects.toThrow(/not a process ID/);
    await expect(inspect(['--token', 'xyz'])).rejects.toThrow(/48 hex digits/);
    expect((await inspect(['--help'])).out).toContain('flowtop inspect PID');
  });
});

describe('inspect output', () => {
  it('marks anything not secure in red with its reason, and warns about modified or replaced code', async () => {
    const { formatEntry } = await import('../../src/commands/inspect.js');
    const insecure = formatEntry({
      query: { pid: 42 },
      token: 'ab'.repeat(24),
      attribution: { trust: 'insecure', pid: 42, name: 'sshd', reason: { call: 'open /proc/42/exe', errno: 'EACCES', message: 'permission denied' } },
    }, true);
    expect(insecure).toContain('\x1b[31mINSECURE');
    expect(insecure).toContain('\x1b[31mpermission denied [open /proc/42/exe: EACCES]');
    const modified = formatEntry({
      query: { pid: 7 },
      token: 'cd'.repeat(24),
      attribution: { trust: 'secure', pid: 7, name: 'sleep', path: '/usr/bin/sleep', exeChanged: 'replaced', signer: { kind: 'modified', label: 'modified (differs from package coreutils)', package: 'coreutils' } },
    });
    expect(modified).toContain('trust     secure');
    expect(modified).toContain('warning   the file at this path was replaced');
    expect(modified).toContain('warning   the executable differs from the checksum recorded by package coreutils');
    expect(modified).not.toContain('\x1b[');
    expect(modified).not.toContain('reason');
  });
});
