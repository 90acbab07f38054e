// The secure route against real processes: no kernel mocks.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Attributor } from '../../src/attribution/attributor.js';
import type { Attribution } from '../../src/attribution/types.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { makeLinuxToken } from '../../src/native/linux/token.js';
import { decodeLinuxToken, encodeLinuxToken } from '../../src/protocol/tokens.js';
import { exeOf, isLinux, startProgram, stop, waitFor } from './helpers.js';

function readProcState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe.runIf(isLinux)('Linux secure route', () => {
  const backend = createLinuxBackend({ thread: 'inline' });
  const resolveOne = async (token: Buffer): Promise<Attribution> => (await backend.resolve([token]))[0]!;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-attr-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('attributes a spawned child securely: path, hash, uid, user, parent', async () => {
    const child = await startProgram('/usr/bin/sleep');
    try {
      const a = await resolveOne(makeLinuxToken(child.pid)!);
      expect(a.trust).toBe('secure');
      expect(a.pid).toBe(child.pid);
      expect(a.path).toBe('/usr/bin/sleep');
      expect(a.sha256).toBe(sha256('/usr/bin/sleep'));
      expect(a.uid).toBe(process.geteuid!());
      if (process.geteuid!() === 0) expect(a.user).toBe('root');
      expect(a.name).toBe('sleep');
      expect(a.cmdline).toEqual(['/usr/bin/sleep', '300']);
      expect(a.parents?.[0]).toMatchObject({ pid: process.pid, path: exeOf(process.pid) });
      expect(a.reason).toBeUndefined();
    } finally {
      await stop(child);
    }
  });

  it('says gone, never another identity, when the start time or pidfs inode does not match', async () => {
    const child = await startProgram('/usr/bin/sleep');
    try {
      const real = decodeLinuxToken(makeLinuxToken(child.pid)!)!;
      for (const forged of [
        encodeLinuxToken({ ...real, startTime: real.startTime - 1n }),
        encodeLinuxToken({ ...real, startTime: real.startTime + 1n }),
      ]) {
        const a = await resolveOne(forged);
        expect(a).toEqual({ trust: 'gone', pid: child.pid, reason: expect.objectContaining({ message: expect.stringContaining('PID reused by another process') }) });
      }
      if (real.pidfsInode !== 0n) {
        const a = await resolveOne(encodeLinuxToken({ ...real, pidfsInode: real.pidfsInode + 1n }));
        expect(a.trust).toBe('gone');
        expect(a.reason?.message).toContain('PID reused by another process');
        expect(a.name).toBeUndefined();
        expect(a.path).toBeUndefined();
      }
    } finally {
      await stop(child);
    }
  });

  it('says gone with ESRCH for a process that has exited', async () => {
    const child = await startProgram('/usr/bin/sleep');
    const token = makeLinuxToken(child.pid)!;
    await stop(child);
    await waitFor(() => exeOf(child.pid) === undefined, 'the child to be reaped');
    const a = await resolveOne(token);
    expect(a.trust).toBe('gone');
    expect(a.reason?.errno).toBe('ESRCH');
    expect(a.reason?.code).toBe(3);
    expect(a.name).toBeUndefined();
  });

  it('says gone for a process that has exited but is not yet reaped (a zombie)', async () => {
    // sh starts `true` in the background, then becomes sleep, which never reaps it.
    const parent = spawn('/bin/sh', ['-c', '/usr/bin/true & exec /usr/bin/sleep 300'], { stdio: 'ignore' }) as ChildProcess & { pid: number };
    try {
      let zombie = 0;
      await waitFor(() => {
        if (exeOf(parent.pid) !== '/usr/bin/sleep') return false;
        const kids = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
        zombie = kids.find((pid) => readProcState(pid) === 'Z') ?? 0;
        return zombie > 0;
      }, 'a zombie child');
      const token = makeLinuxToken(zombie);
      expect(token).toBeDefined();
      const a = await resolveOne(token!);
      expect(a.trust).toBe('gone');
      expect(a.reason?.errno).toBe('ESRCH');
      expect(a.reason?.message).toContain('exited');
    } finally {
      await stop(parent);
    }
  });

  it('identifies what actually runs when its file is replaced, deleted or renamed on disk', async () => {
    const prog = join(dir, 'prog');
    copyFileSync('/usr/bin/sleep', prog);
    const original = sha256(prog);
    const child = await startProgram(prog);
    try {
      const token = makeLinuxToken(child.pid)!;
      const before = await resolveOne(token);
      expect(before).toMatchObject({ trust: 'secure', path: prog, sha256: original, signer: { kind: 'unpackaged' } });
      expect(before.exeChanged).toBeUndefined();

      // Replaced: another file renamed over the path (how installers update binaries).
      writeFileSync(join(dir, 'impostor'), '#!/bin/sh\necho not sleep\n', { mode: 0o755 });
      renameSync(join(dir, 'impostor'), prog);
      const replaced = await resolveOne(token);
      expect(replaced).toMatchObject({ trust: 'secure', path: prog, sha256: original, identity: `sha256:${original}`, exeChanged: 'replaced' });

      // Deleted: nothing at the path any more.
      unlinkSync(prog);
      const deleted = await resolveOne(token);
      expect(deleted).toMatchObject({ trust: 'secure', path: prog, sha256: original, exeChanged: 'deleted' });
    } finally {
      await stop(child);
    }

    // Renamed: the path follows the running file, and its identity does not change.
    const moved = join(dir, 'prog-a');
    copyFileSync('/usr/bin/sleep', moved);
    const second = await startProgram(moved);
    try {
      renameSync(moved, join(dir, 'prog-b'));
      const renamed = await resolveOne(makeLinuxToken(second.pid)!);
      expect(renamed).toMatchObject({ trust: 'secure', path: join(dir, 'prog-b'), sha256: original });
    } finally {
      await stop(second);
    }
  });

  it('keeps tokens taken before and after an exec apart: no shared cache entry, no shared identity', async () => {
    const child = await startProgram('/bin/sh', ['-c', 'read line; exec /usr/bin/sleep 300'], { stdin: 'pipe' });
    const attributor = new Attributor(backend, { windowMs: 0 });
    try {
      const before = makeLinuxToken(child.pid)!;
      const shell = await resolveOne(before);
      expect(shell.trust).toBe('secure');
      expect(shell.path).toBe(exeOf(child.pid));
      child.stdin!.write('go\n');
      await waitFor(() => exeOf(child.pid) === '/usr/bin/sleep', 'the exec');
      const after = makeLinuxToken(child.pid)!;
      expect(after.equals(before)).toBe(false);

      const updates = new Promise<void>((resolve) => {
        let seen = 0;
        attributor.updates$.subscribe((u) => {
          seen += u.length;
          if (seen >= 2) resolve();
        });
      });
      attributor.request(before.toString('base64'));
      attributor.request(after.toString('base64'));
      attributor.flush();
      await updates;
      expect(attributor.stats().cached).toBe(2);
      const old = attributor.request(before.toString('base64'));
      const now = attributor.request(after.toString('base64'));
      expect(now).toMatchObject({ trust: 'secure', path: '/usr/bin/sleep', sha256: sha256('/usr/bin/sleep') });
      // The pre-exec token named the shell; the shell's program is gone, and the token never shows sleep.
      expect(old.trust).toBe('gone');
      expect(old.reason?.message).toContain('another program');
      expect(old.identity).toBeUndefined();
      expect(old.identity).not.toBe(now.identity);
    } finally {
      attributor.close();
      await stop(child);
    }
  });

  it('answers malformed tokens with a reason and resolves a batch in order', async () => {
    const child = await startProgram('/usr/bin/sleep');
    try {
      const results = await backend.resolve([Buffer.alloc(3), makeLinuxToken(child.pid)!, Buffer.alloc(24)]);
      expect(results.map((r) => r.trust)).toEqual(['insecure', 'secure', 'insecure']);
      expect(results[0]?.reason?.call).toBe('decode token');
      expect(results[1]?.pid).toBe(child.pid);
    } finally {
      await stop(child);
    }
  });
});
