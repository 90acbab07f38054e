// dpkg index and passwd parsing against real files in a temporary root (the system is never touched).
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DpkgIndex, pathAliases } from '../../src/native/linux/packages.js';
import { parseCmdline, parseProcStatus } from '../../src/native/linux/procfs.js';
import { UserNames, parsePasswd } from '../../src/native/linux/users.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'flowtop-dpkg-'));
  mkdirSync(join(root, 'info'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('DpkgIndex', () => {
  it('finds the owning package and its recorded md5, across the /bin ↔ /usr/bin usrmerge split', () => {
    writeFileSync(join(root, 'info', 'coreutils.list'), '/.\n/bin\n/bin/sleep\n/usr/bin/env\n');
    writeFileSync(join(root, 'info', 'coreutils.md5sums'), `${'a'.repeat(32)}  bin/sleep\n${'b'.repeat(32)}  usr/bin/env\ngarbage line\n`);
    writeFileSync(join(root, 'info', 'libc6:amd64.list'), '/usr/lib/x86_64-linux-gnu/libc.so.6\n');
    const index = new DpkgIndex(root);
    expect(index.owner('/usr/bin/sleep')).toEqual({ package: 'coreutils', listedPath: '/bin/sleep', md5: 'a'.repeat(32) });
    expect(index.owner('/bin/sleep')?.listedPath).toBe('/bin/sleep');
    expect(index.owner('/usr/bin/env')?.md5).toBe('b'.repeat(32));
    expect(index.owner('/lib/x86_64-linux-gnu/libc.so.6')).toEqual({ package: 'libc6', listedPath: '/usr/lib/x86_64-linux-gnu/libc.so.6' });
    expect(index.owner('/tmp/sleep')).toBeUndefined();
  });

  it('skips bad package names and malformed md5 lines, and answers nothing without a database', () => {
    writeFileSync(join(root, 'info', 'Bad Name.list'), '/usr/bin/evil\n');
    writeFileSync(join(root, 'info', 'tool.list'), '/usr/bin/tool\n');
    writeFileSync(join(root, 'info', 'tool.md5sums'), 'not-a-sum  usr/bin/tool\n');
    const index = new DpkgIndex(root);
    expect(index.owner('/usr/bin/evil')).toBeUndefined();
    expect(index.owner('/usr/bin/tool')).toEqual({ package: 'tool', listedPath: '/usr/bin/tool' });
    expect(new DpkgIndex(join(root, 'missing')).owner('/usr/bin/tool')).toBeUndefined();
  });

  it('rebuilds the index when a package is installed later', () => {
    let now = 0;
    const index = new DpkgIndex(root, () => now);
    expect(index.owner('/usr/bin/new')).toBeUndefined();
    writeFileSync(join(root, 'info', 'newpkg.list'), '/usr/bin/new\n');
    utimesSync(join(root, 'info'), new Date(), new Date(Date.now() + 5000));
    now += 5000;
    expect(index.owner('/usr/bin/new')?.package).toBe('newpkg');
  });

  it('lists the usrmerge aliases of a path', () => {
    expect(pathAliases('/usr/sbin/sshd')).toEqual(['/usr/sbin/sshd', '/sbin/sshd']);
    expect(pathAliases('/bin/ls')).toEqual(['/bin/ls', '/usr/bin/ls']);
    expect(pathAliases('/opt/x')).toEqual(['/opt/x']);
  });
});

describe('passwd and /proc parsing', () => {
  it('maps uids to validated names and skips malformed lines', () => {
    const names = parsePasswd('root:x:0:0:root:/root:/bin/bash\n#comment\nbad line\nev il:x:5:5::/:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\nalice2:x:1000:1000::/:/bin/sh\nnum:x:12a:1::/:/bin/sh\n');
    expect([...names]).toEqual([[0, 'root'], [1000, 'alice']]);
  });

  it('re-reads the passwd file when it changes', () => {
    const file = join(root, 'passwd');
    writeFileSync(file, 'root:x:0:0::/:/bin/sh\n');
    let now = 0;
    const users = new UserNames(file, () => now);
    expect(users.name(1001)).toBeUndefined();
    writeFileSync(file, 'root:x:0:0::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n');
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    now += 2000;
    expect(users.name(1001)).toBe('bob');
    expect(new UserNames(join(root, 'none')).name(0)).toBeUndefined();
  });

  it('parses status uids and cmdline arguments', () => {
    expect(parseProcStatus('Name:\tx\nPPid:\t7\nUid:\t1000\t1001\t1002\t1003\n')).toEqual({ uids: [1000, 1001, 1002, 1003], ppid: 7 });
    expect(parseProcStatus('Name:\tx\n')).toBeUndefined();
    expect(parseCmdline(Buffer.from('a\0b c\0\0'))).toEqual(['a', 'b c', '']);
    expect(parseCmdline(Buffer.alloc(0))).toEqual([]);
  });
});
