// Lookups as an unprivileged user, dpkg package identity, a modified package file in a private mount
// namespace, and the worker thread. Needs root (setpriv, unshare, mount): skipped with a message
// outside CI, a failure under CI=true.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { kernelHasPidfs, makeLinuxToken } from '../../src/native/linux/token.js';
import { bundle, inCI, isLinux, needRoot, removeBundles, startProgram, stop } from './helpers.js';

const root = isLinux ? needRoot() : { skip: true, why: 'Linux only' };
const hasDpkg = existsSync('/var/lib/dpkg/info/coreutils.list');
if (inCI && !hasDpkg) throw new Error('CI=true but /var/lib/dpkg/info/coreutils.list is missing: the package tests need a Debian system');

function tool(name: string): string {
  const found = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, name)).find((p) => existsSync(p));
  if (!found) {
    if (inCI) throw new Error(`CI=true but ${name} is not installed (Debian package util-linux / mount)`);
    return '';
  }
  return found;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function runJson(command: string, args: string[]): Attribution[] {
  const out = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
  if (out.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${out.status}): ${out.stderr}`);
  return JSON.parse(out.stdout) as Attribution[];
}

describe.skipIf(root.skip)(`Linux attribution with privileges and packages${root.skip ? ` (skipped: ${root.why})` : ''}`, () => {
  let fixture: string;
  let dir: string;

  beforeAll(async () => {
    fixture = await bundle('test/native-linux/fixtures/resolve-tokens.ts', 'resolve-tokens');
    dir = mkdtempSync(join(tmpdir(), 'flowtop-pkg-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    removeBundles();
  });

  it('is insecure with EACCES when an unprivileged user looks up a root process', async () => {
    const setpriv = tool('setpriv');
    const child = await startProgram('/usr/bin/sleep');
    try {
      const token = makeLinuxToken(child.pid)!;
      const [a] = runJson(setpriv, ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, fixture, token.toString('hex')]);
      expect(a?.trust).toBe('insecure');
      expect(a?.reason?.errno).toBe('EACCES');
      expect(a?.reason?.code).toBe(13);
      expect(a?.reason?.call).toBe(`open /proc/${child.pid}/exe`);
      // What a PID alone gives, shown as unverified.
      expect(a?.name).toBe('sleep');
      expect(a?.pid).toBe(child.pid);
      expect(a?.sha256).toBeUndefined();
      expect(a?.identity).toBeUndefined();
    } finally {
      await stop(child);
    }
  });

  it('lets an unprivileged user make a token for a root process (exec tag unknown: 0), which root cannot call secure', async () => {
    const child = await startProgram('/usr/bin/sleep');
    try {
      const [hex] = runJson(tool('setpriv'), ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, fixture, '--make', String(child.pid)]) as unknown as [string | null];
      expect(hex).toMatch(/^[0-9a-f]{48}$/);
      const mine = makeLinuxToken(child.pid)!;
      const theirs = Buffer.from(hex!, 'hex');
      expect(theirs.readUInt32LE(4)).toBe(0);
      expect(theirs.subarray(8).equals(mine.subarray(8))).toBe(true);
      // Root finds the instance (start time and inode match) but not which program the token was made
      // for: the process may have exec'd since, so what runs now cannot be vouched for.
      const [a] = await createLinuxBackend({ thread: 'inline' }).resolve([theirs]);
      expect(a?.trust).toBe('insecure');
      expect(a?.reason?.message).toMatch(/does not say which program/);
      expect(a?.pid).toBe(child.pid);
    } finally {
      await stop(child);
    }
  });

  it('is still gone, not insecure, for an unprivileged lookup of a reused PID', async () => {
    const child = await startProgram('/usr/bin/sleep');
    try {
      const token = Buffer.from(makeLinuxToken(child.pid)!);
      token.writeBigUInt64LE(token.readBigUInt64LE(8) + 5n, 8);
      const [a] = runJson(tool('setpriv'), ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, fixture, token.toString('hex')]);
      expect(a?.trust).toBe('gone');
      expect(a?.reason?.message).toContain('PID reused by another process');
      expect(a?.name).toBeUndefined();
    } finally {
      await stop(child);
    }
  });

  it('never shows the new process for a token whose PID the kernel really reused (PID namespace + ns_last_pid)', () => {
    const unshare = tool('unshare');
    const out = spawnSync(unshare, ['--pid', '--fork', '--mount-proc', process.execPath, fixture, '--reuse'], { encoding: 'utf8', timeout: 30_000 });
    if (out.status !== 0) throw new Error(`unshare --pid failed (${out.status}): ${out.stderr}`);
    const { pid, reused, old, now, tokens, pidfs } = JSON.parse(out.stdout) as { pid: number; reused: boolean; old: Attribution; now: Attribution; tokens: [string, string]; pidfs: boolean };
    expect(reused).toBe(true);
    // As PID 1 of the namespace the token maker still finds pidfs, so the two instances differ by inode
    // even when both started within the same clock tick (start times are only 10 ms apart at best).
    expect(pidfs).toBe(kernelHasPidfs());
    if (pidfs) expect(tokens[0].slice(32)).not.toBe(tokens[1].slice(32));
    expect(now).toMatchObject({ trust: 'secure', pid, name: 'tail', path: '/usr/bin/tail' });
    expect(old).toEqual({ trust: 'gone', pid, reason: expect.objectContaining({ message: expect.stringContaining('PID reused by another process') }) });
  });

  it.skipIf(!hasDpkg)('shows the dpkg package of a packaged binary, and unpackaged for a copy in /tmp', async () => {
    const backend = createLinuxBackend({ thread: 'inline' });
    const packaged = await startProgram('/usr/bin/sleep');
    const copy = join(dir, 'sleep');
    copyFileSync('/usr/bin/sleep', copy);
    chmodSync(copy, 0o755);
    const unpackaged = await startProgram(copy);
    try {
      const [pkg, tmp] = await backend.resolve([makeLinuxToken(packaged.pid)!, makeLinuxToken(unpackaged.pid)!]);
      expect(pkg?.signer).toEqual({ kind: 'package', label: 'package coreutils', package: 'coreutils' });
      expect(pkg?.identity).toMatch(/^package:coreutils:(\/usr)?\/bin\/sleep$/);
      expect(tmp?.signer?.kind).toBe('unpackaged');
      expect(tmp?.sha256).toBe(pkg?.sha256);
      expect(tmp?.identity).toBe(`sha256:${pkg?.sha256}`);
    } finally {
      await stop(packaged);
      await stop(unpackaged);
    }
  });

  it.skipIf(!hasDpkg)('shows modified for a changed file in place of a package file (private mount namespace)', () => {
    const unshare = tool('unshare');
    const modified = join(dir, 'sleep-modified');
    copyFileSync('/usr/bin/sleep', modified);
    appendFileSync(modified, Buffer.from('tampered'));
    chmodSync(modified, 0o755);
    // The bind mount exists only inside the new mount namespace; the system's /usr/bin/sleep is untouched.
    const script = `mount --bind '${modified}' /usr/bin/sleep && exec '${process.execPath}' '${fixture}' --spawn /usr/bin/sleep`;
    const [a] = runJson(unshare, ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    expect(a?.trust).toBe('secure');
    expect(a?.path).toBe('/usr/bin/sleep');
    expect(a?.sha256).toBe(sha256(modified));
    expect(a?.signer).toMatchObject({ kind: 'modified', package: 'coreutils' });
    expect(a?.identity).toBe(`sha256:${sha256(modified)}`);
    // And outside the namespace the real file still belongs to coreutils, unchanged.
    expect(execFileSync('sha256sum', ['/usr/bin/sleep'], { encoding: 'utf8' }).split(' ')[0]).not.toBe(sha256(modified));
  });

  it('resolves on a worker thread exactly as in this thread', async () => {
    const workerFile = await bundle('src/native/linux/worker.ts', 'linux-worker');
    const worker = createLinuxBackend({ thread: pathToFileURL(workerFile) });
    const inline = createLinuxBackend({ thread: 'inline' });
    const child = await startProgram('/usr/bin/sleep');
    try {
      expect(worker.mode).toBe('worker');
      const tokens = [makeLinuxToken(child.pid)!, makeLinuxToken(process.pid)!, Buffer.alloc(5)];
      const [fromWorker, fromHere] = await Promise.all([worker.resolve(tokens), inline.resolve(tokens)]);
      expect(fromWorker).toEqual(fromHere);
      expect(fromWorker[0]?.trust).toBe('secure');
    } finally {
      worker.close?.();
      await stop(child);
    }
  });
});
