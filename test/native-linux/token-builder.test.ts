// One token builder: the agent's token cache (per queued packet, through libc into reused buffers) and
// the one-shot makeLinuxToken must give the same bytes for the same real process, and those bytes must
// be what node's own fs reads of /proc and of the pidfd say. The struct stat offsets the fast path
// reads must be this architecture's: checked against fs.statSync of real files.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, fstatSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenCache } from '../../src/agent/token-cache.js';
import { encodeLinuxToken } from '../../src/protocol/tokens.js';
import { libc } from '../../src/native/linux/libc.js';
import { parseProcStat, parseStartTime } from '../../src/native/linux/procfs.js';
import {
  FILE_ID_BYTES, fileIdView, statCtimeNs, statDev, statIno, statLayoutFor, statLinks, statMode, statMtimeNs, statSize, type StatLayout,
} from '../../src/native/linux/stat-layout.js';
import { TokenBuilder, execTag, kernelHasPidfs, makeLinuxToken, pidfdOpen } from '../../src/native/linux/token.js';
import { isLinux, startProgram, stop, waitFor } from './helpers.js';

/** The token as node's fs sees the process: /proc/PID/stat as text, fstat of a pidfd, stat of the exe. */
function tokenByNodeFs(pid: number): Buffer {
  const pidfd = pidfdOpen(pid);
  if (pidfd < 0) throw new Error(`pidfd_open ${pid}: ${-pidfd}`);
  try {
    const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
    if (!stat) throw new Error(`unparsable /proc/${pid}/stat`);
    const pidfsInode = kernelHasPidfs() ? fstatSync(pidfd, { bigint: true }).ino : 0n;
    const exe = statSync(`/proc/${pid}/exe`, { bigint: true });
    return encodeLinuxToken({ pid, startTime: stat.startTime, pidfsInode, execTag: execTag(exe.dev, exe.ino) });
  } finally {
    libc().close(pidfd);
  }
}

function expectSameToken(pid: number): Buffer {
  const reference = tokenByNodeFs(pid);
  const cache = new TokenCache();
  try {
    const cached = cache.get(pid);
    expect(cached?.token.toString('hex')).toBe(reference.toString('hex'));
    // a hit (pidfd alive, executable re-checked) returns the same bytes
    expect(cache.get(pid)?.token.toString('hex')).toBe(reference.toString('hex'));
    expect(makeLinuxToken(pid)?.toString('hex')).toBe(reference.toString('hex'));
  } finally {
    cache.clear();
  }
  return reference;
}

describe.skipIf(!isLinux)('one token builder', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-token-builder-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the agent cache, makeLinuxToken and node fs give the same bytes for a plain child', async () => {
    const child = await startProgram('/bin/sleep', ['30']);
    try {
      expectSameToken(child.pid);
    } finally {
      await stop(child);
    }
  });

  it('…for a program whose name holds spaces and parentheses (comm "a) b (c")', async () => {
    const copy = join(dir, 'a) b (c');
    copyFileSync('/bin/sleep', copy);
    chmodSync(copy, 0o755);
    const child = await startProgram(copy, ['30']);
    try {
      expect(readFileSync(`/proc/${child.pid}/comm`, 'utf8')).toBe('a) b (c\n');
      expectSameToken(child.pid);
    } finally {
      await stop(child);
    }
  });

  it('…for another user\'s process, and again after it execs another program', async () => {
    if (process.getuid?.() !== 0) return;
    // sh (as nobody) waits for a line on stdin, then execs sleep: same PID, start time and pidfs inode
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/sh', '-c', 'read line; exec /bin/sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitFor(() => isShell(child.pid!), 'the shell to start');
      const before = expectSameToken(child.pid!);
      child.stdin!.write('go\n');
      await waitFor(() => statSafe(`/proc/${child.pid}/exe`) === statSync('/bin/sleep').ino, 'the exec');
      const after = expectSameToken(child.pid!);
      expect(after.subarray(0, 4).equals(before.subarray(0, 4))).toBe(true);
      expect(after.equals(before)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('…for many children at once (each its own bytes)', async () => {
    const children = await Promise.all(Array.from({ length: 20 }, () => startProgram('/bin/sleep', ['30'])));
    try {
      const tokens = children.map((c) => expectSameToken(c.pid).toString('hex'));
      expect(new Set(tokens).size).toBe(children.length);
    } finally {
      await Promise.all(children.map(stop));
    }
  });

  it('the byte parser of /proc/PID/stat reads the start time parseProcStat reads, for every live process', () => {
    const pids = spawnSync('ls', ['/proc']).stdout.toString().split('\n').filter((n) => /^\d+$/.test(n)).map(Number);
    let compared = 0;
    for (const pid of pids) {
      let raw: Buffer;
      try {
        raw = readFileSync(`/proc/${pid}/stat`);
      } catch {
        continue; // exited since the listing
      }
      expect(parseStartTime(raw, raw.length, pid)).toBe(parseProcStat(raw.toString('latin1'))?.startTime);
      compared++;
    }
    expect(compared).toBeGreaterThan(5);
    for (const line of ['4242 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 1 1\n', '12 (x) S 1 2 3', '', '7 (x)', '8 (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12a 1\n']) {
      const b = Buffer.from(line, 'latin1');
      const pid = Number(line.split(' ')[0]);
      const text = parseProcStat(line);
      expect(parseStartTime(b, b.length, pid)).toBe(text?.pid === pid ? text.startTime : undefined);
    }
  });
});

function statSafe(path: string): number | undefined {
  return statSync(path, { throwIfNoEntry: false })?.ino;
}

function isShell(pid: number): boolean {
  try {
    return /^(sh|dash|bash)\n$/.test(readFileSync(`/proc/${pid}/comm`, 'utf8'));
  } catch {
    return false;
  }
}

describe.skipIf(!isLinux)('struct stat layout', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-stat-layout-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('knows the running architecture', () => {
    expect(statLayoutFor(process.arch)).toBeDefined();
  });

  it('every layout keeps its fields inside the struct, apart, with the file id at dev..ino', () => {
    for (const arch of ['x64', 'arm64', 'riscv64', 'loong64']) {
      const l = statLayoutFor(arch)!;
      expect(l.ino, arch).toBe(l.dev + 8);
      const spans: Array<[number, number]> = [
        [l.dev, 16], [l.mode, 4], [l.nlink, l.nlinkBytes], [l.fileSize, 8], [l.mtimeSec, 8], [l.mtimeNsec, 8], [l.ctimeSec, 8], [l.ctimeNsec, 8],
      ];
      for (const [at, len] of spans) expect(at + len, arch).toBeLessThanOrEqual(l.size);
      const sorted = [...spans].sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]![0], arch).toBeGreaterThanOrEqual(sorted[i - 1]![0] + sorted[i - 1]![1]);
    }
    expect(statLayoutFor('ia32')).toBeUndefined();
  });

  it('reads dev, ino, mode, links, size, mtime and ctime as fs.statSync reports them, for real files', () => {
    const file = join(dir, 'data');
    writeFileSync(file, Buffer.alloc(12345, 7));
    // an mtime with nanoseconds, and a second link, so no field can be right by being zero or one
    utimesSync(file, 1_600_000_000.5, 1_700_000_123.25);
    linkSync(file, join(dir, 'second-link'));
    mkdirSync(join(dir, 'sub'));
    symlinkSync(file, join(dir, 'link'));
    const layout = statLayoutFor(process.arch)!;
    const builder = new TokenBuilder();
    const paths = [file, join(dir, 'sub'), join(dir, 'link'), '/proc/self/exe', '/bin/sleep', '/dev/null', dir];
    for (const path of paths) {
      const st = builder.statPath(Buffer.from(`${path}\0`));
      expect(st, path).toBeDefined();
      const want = statSync(path, { bigint: true });
      const got = {
        dev: statDev(st!, layout), ino: statIno(st!, layout), mode: BigInt(statMode(st!, layout)), nlink: BigInt(statLinks(st!, layout)),
        size: statSize(st!, layout), mtimeNs: statMtimeNs(st!, layout), ctimeNs: statCtimeNs(st!, layout),
      };
      expect(got, path).toEqual({ dev: want.dev, ino: want.ino, mode: want.mode, nlink: want.nlink, size: want.size, mtimeNs: want.mtimeNs, ctimeNs: want.ctimeNs });
      const id = fileIdView(st!, layout);
      expect(id.length).toBe(FILE_ID_BYTES);
      expect([id.readBigUInt64LE(0), id.readBigUInt64LE(8)]).toEqual([want.dev, want.ino]);
    }
  });

  it('would catch the other architecture\'s offsets (the layouts differ where it matters)', () => {
    const other: StatLayout = statLayoutFor(process.arch === 'x64' ? 'arm64' : 'x64')!;
    const builder = new TokenBuilder();
    const file = join(dir, 'data');
    const st = builder.statPath(Buffer.from(`${file}\0`))!;
    const want = statSync(file, { bigint: true });
    expect(BigInt(statMode(st, other)) === want.mode && BigInt(statLinks(st, other)) === want.nlink).toBe(false);
  });
});
