import { spawn } from 'node:child_process';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { kernelHasPidfs, makeLinuxToken, readStartTime } from '../../src/native/linux/token.js';
import { parseProcStat } from '../../src/native/linux/procfs.js';

describe('parseProcStat', () => {
  it('splits after the last parenthesis, so a comm with spaces and ")" cannot shift fields', () => {
    const line = '4242 (evil) 1 2 (x) S 77 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10\n';
    expect(parseProcStat(line)).toEqual({ pid: 4242, comm: 'evil) 1 2 (x', state: 'S', ppid: 77, flags: 4194560, startTime: 987654n });
  });
  it('rejects truncated or malformed lines', () => {
    expect(parseProcStat('')).toBeUndefined();
    expect(parseProcStat('12 (a) S 1 2 3')).toBeUndefined();
    expect(parseProcStat('x (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 1 1')).toBeUndefined();
  });
});

describe('makeLinuxToken', () => {
  it('encodes pid, start time and pidfs inode of a live process', () => {
    const child = spawn('sleep', ['30']);
    try {
      const pid = child.pid!;
      const token = makeLinuxToken(pid);
      expect(token).toBeDefined();
      const decoded = decodeLinuxToken(token!)!;
      expect(decoded.pid).toBe(pid);
      expect(decoded.startTime).toBe(readStartTime(pid));
      expect(decoded.startTime).toBeGreaterThan(0n);
      if (kernelHasPidfs()) expect(decoded.pidfsInode).toBeGreaterThan(0n);
      else expect(decoded.pidfsInode).toBe(0n);
      // Same instance, same token.
      expect(makeLinuxToken(pid)!.equals(token!)).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });
  it('detects pidfs on kernels that have it (6.9+)', () => {
    const [major = 0, minor = 0] = release().split('.').map((n) => parseInt(n, 10));
    if (major > 6 || (major === 6 && minor >= 9)) expect(kernelHasPidfs()).toBe(true);
  });

  it('gives different tokens to different processes and none to a missing or invalid PID', async () => {
    const a = spawn('sleep', ['30']);
    const b = spawn('sleep', ['30']);
    try {
      expect(makeLinuxToken(a.pid!)!.equals(makeLinuxToken(b.pid!)!)).toBe(false);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
    }
    const exited = spawn('true');
    await new Promise((resolve) => exited.on('exit', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(makeLinuxToken(exited.pid!)).toBeUndefined();
    expect(makeLinuxToken(0)).toBeUndefined();
    expect(makeLinuxToken(-5)).toBeUndefined();
    expect(makeLinuxToken(1.5)).toBeUndefined();
    expect(readStartTime(0)).toBeUndefined();
  });
});
