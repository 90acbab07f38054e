// OwnerIndex over a /proc-shaped directory built for the test: fd entries are real symlinks whose
// targets read "socket:[N]", exactly what readlink returns under /proc. Lets the test stage what is
// hard to time with live processes: a PID reused between polls, a descriptor number reused.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OwnerIndex } from '../../src/monitor/owners.js';

let root = '';
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = '';
});

function fakeProc(): { add(pid: number, start: number, fds: Record<string, string>): void; setFd(pid: number, fd: string, target?: string): void; setStart(pid: number, start: number): void; kill(pid: number): void } {
  root = mkdtempSync(join(tmpdir(), 'flowtop-proc-'));
  const stat = (pid: number, start: number): string => `${pid} (node) S 1 ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 10\n`;
  return {
    add(pid, start, fds) {
      mkdirSync(join(root, String(pid), 'fd'), { recursive: true });
      writeFileSync(join(root, String(pid), 'stat'), stat(pid, start));
      for (const [fd, target] of Object.entries(fds)) symlinkSync(target, join(root, String(pid), 'fd', fd));
    },
    setFd(pid, fd, target) {
      const path = join(root, String(pid), 'fd', fd);
      try {
        unlinkSync(path);
      } catch {
        // not there yet
      }
      if (target) symlinkSync(target, path);
    },
    setStart(pid, start) {
      writeFileSync(join(root, String(pid), 'stat'), stat(pid, start));
    },
    kill(pid) {
      rmSync(join(root, String(pid)), { recursive: true, force: true });
    },
  };
}

const far = (): number => performance.now() + 10_000;

describe('OwnerIndex', () => {
  it('finds the owners of sockets of new processes, with the start time of the instance', () => {
    const proc = fakeProc();
    proc.add(100, 5000, { 0: '/dev/null', 3: 'socket:[777]', 4: 'pipe:[9]' });
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(far());
    expect(index.ownerOf(777)).toEqual({ pid: 100, startTime: 5000n });
    expect(index.ownerOf(9)).toBeUndefined();
    expect(index.exhausted()).toBe(true);
  });

  it('rescans a known process only where descriptors may have changed, and still sees a reused fd number', () => {
    const proc = fakeProc();
    const fds: Record<string, string> = {};
    for (let i = 3; i < 203; i++) fds[String(i)] = `socket:[${1000 + i}]`;
    proc.add(200, 1, fds);
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(far());
    // Socket 1003 closed; fd 3 reused for a new socket 5000.
    proc.setFd(200, '3', 'socket:[5000]');
    index.refresh(far());
    const live = new Set<number>([5000, ...Array.from({ length: 199 }, (_, i) => 1004 + i)]);
    index.resolve([5000], new Set([0]), far(), (inode) => live.has(inode));
    expect(index.ownerOf(5000)?.pid).toBe(200);
    expect(index.stats().links).toBe(1); // only fd 3: its old socket is gone
    expect(index.ownerOf(1003)).toBeUndefined();
  });

  it('falls back to full rescans when an fd was reused while its old socket still lives elsewhere', () => {
    const proc = fakeProc();
    proc.add(300, 1, { 3: 'socket:[42]' });
    proc.add(301, 2, { 3: 'socket:[42]' }); // shared after fork
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(far());
    expect(index.ownerOf(42)?.pid).toBe(300); // the first holder keeps it
    proc.setFd(301, '3', 'socket:[43]'); // 301 closed its copy and reused fd 3
    index.refresh(far());
    index.resolve([43], undefined, far(), (inode) => inode === 42 || inode === 43);
    expect(index.ownerOf(43)?.pid).toBe(301);
    expect(index.ownerOf(42)?.pid).toBe(300);
  });

  it('forgets a process that exited and never attributes its sockets to a process reusing the PID', () => {
    const proc = fakeProc();
    proc.add(400, 10, { 3: 'socket:[88]' });
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(far());
    expect(index.ownerOf(88)).toEqual({ pid: 400, startTime: 10n });
    // Between two polls, 400 exits and a new process gets PID 400 with other sockets.
    proc.setStart(400, 99);
    proc.setFd(400, '3', 'socket:[89]');
    index.refresh(far());
    index.resolve([89], undefined, far(), (inode) => inode === 89);
    expect(index.ownerOf(88)).toBeUndefined();
    expect(index.ownerOf(89)).toEqual({ pid: 400, startTime: 99n });
    proc.kill(400);
    index.refresh(far());
    expect(index.ownerOf(89)).toBeUndefined();
  });

  it('stops at the budget and says the search is not exhausted', () => {
    const proc = fakeProc();
    proc.add(500, 1, { 3: 'socket:[1]' });
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(performance.now() - 1); // no time at all: nothing scanned
    expect(index.ownerOf(1)).toBeUndefined();
    expect(index.exhausted()).toBe(false);
    index.resolve([1], undefined, far(), () => false);
    expect(index.ownerOf(1)?.pid).toBe(500);
    expect(index.exhausted()).toBe(true);
  });

  it('does not count a process whose fd directory could not be read as searched', () => {
    const proc = fakeProc();
    proc.add(600, 1, {});
    rmSync(join(root, '600', 'fd'), { recursive: true });
    writeFileSync(join(root, '600', 'fd'), ''); // readdir fails (ENOTDIR), as for a process exiting mid-scan
    const index = new OwnerIndex({ procRoot: root });
    index.refresh(far());
    expect(index.stats().processes).toBe(1);
    expect(index.exhausted()).toBe(false);
  });
});
