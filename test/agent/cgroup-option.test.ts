// `flowtop agent --cgroup DIR` with a DIR that is not a cgroup v2 directory (a cgroup v1 hierarchy, the
// tmpfs holding them on a hybrid system, an ordinary folder, a typo) is refused before anything is
// installed, saying where cgroup2 is mounted; it used to start with "BPF unavailable
// (bpf(PROG_ATTACH): EBADF)" and scan /proc instead. A real cgroup v2 directory is still taken.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2DirectoryProblem, mountOf, parseMountinfo } from '../../src/agent/cgroup-directory.js';
import { Netns, TestCgroup, buildAgent, cgroup2Root, cleanupDir, hostRules, removeBuild, skipUnlessCapable, startAgent } from './helpers.js';

const skip = skipUnlessCapable();

// A hybrid system's mountinfo (v1 controllers and cgroup2 under a tmpfs), with a space in one path.
const HYBRID = [
  '22 1 0:20 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '30 22 0:27 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:11 - cgroup2 cgroup2 rw',
  '41 22 0:38 / /mnt/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw',
  'garbage line',
  '',
].join('\n');

describe('which mount holds a path', () => {
  it('reads mountinfo: optional fields, escaped spaces, malformed lines skipped', () => {
    expect(parseMountinfo(HYBRID)).toEqual([
      { mountPoint: '/', fsType: 'ext4' },
      { mountPoint: '/sys/fs/cgroup', fsType: 'tmpfs' },
      { mountPoint: '/sys/fs/cgroup/cpu', fsType: 'cgroup' },
      { mountPoint: '/sys/fs/cgroup/unified', fsType: 'cgroup2' },
      { mountPoint: '/mnt/my cgroups', fsType: 'cgroup2' },
    ]);
  });

  it('the longest mount point above the path, not a sibling sharing its prefix', () => {
    const mounts = parseMountinfo(HYBRID);
    expect(mountOf('/sys/fs/cgroup/unified/flowtop', mounts)?.fsType).toBe('cgroup2');
    expect(mountOf('/sys/fs/cgroup/unifiedx', mounts)?.fsType).toBe('tmpfs');
    expect(mountOf('/sys/fs/cgroup/cpu/x', mounts)?.fsType).toBe('cgroup');
    expect(mountOf('/home', mounts)?.fsType).toBe('ext4');
  });

  it('an ordinary folder and a missing one are not cgroup v2 directories, and the message says where cgroup2 is', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-notcg-'));
    try {
      expect(cgroup2DirectoryProblem(dir, HYBRID)).toBe(`${dir} is not a cgroup v2 directory (it is on a file system of type ext4; cgroup2 is mounted at /sys/fs/cgroup/unified, /mnt/my cgroups)`);
      expect(cgroup2DirectoryProblem(join(dir, 'nope'), HYBRID)).toMatch(/nope is not a cgroup v2 directory \(it does not exist; cgroup2 is mounted at \/sys\/fs\/cgroup\/unified/);
      expect(cgroup2DirectoryProblem(dir, '')).toMatch(/\(no mount holding it is listed; cgroup2 is not mounted here\)$/);
    } finally {
      cleanupDir(dir);
    }
  });
});

describe.skipIf(skip)('flowtop agent --cgroup on this machine', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let before: string;
  let dist: string;
  const root = (): string => cgroup2Root();

  beforeAll(() => {
    before = hostRules();
    dist = buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
  }, 60_000);

  afterAll(() => {
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  function agentWith(cgroup: string): { code: number | null; out: string } {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    try {
      const r = spawnSync(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), 'agent', '--socket', join(dir, 'agent.sock'),
        '--rules', join(dir, 'rules.json'), '--queue-num', '7380', '--cgroup', cgroup], { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    } finally {
      cleanupDir(dir);
    }
  }

  it('refuses a directory that is not cgroup v2 at once, saying where cgroup2 is mounted, and installs nothing', () => {
    const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
    const where = `cgroup2 is mounted at ${root()}`;
    const plain = mkdtempSync(join(tmpdir(), 'flowtop-notcg-'));
    // an ordinary folder, and a cgroup v1 hierarchy where this machine has one (hybrid systems)
    const v1 = mounts.find((m) => m.fsType === 'cgroup' && existsSync(join(m.mountPoint, 'cgroup.procs')))?.mountPoint;
    try {
      for (const dir of [plain, ...(v1 ? [v1] : [])]) {
        const started = Date.now();
        const r = agentWith(dir);
        expect(r.out).toContain(`--cgroup ${dir} is not a cgroup v2 directory (`);
        expect(r.out).toContain(where);
        expect(r.out).not.toMatch(/ready on|PROG_ATTACH/);
        expect(r.code).toBe(1);
        expect(Date.now() - started).toBeLessThan(15_000);
        expect(ns.sh('iptables -w -t mangle -S 2>/dev/null | grep FLOWTOP; nft list table inet flowtop 2>/dev/null; true').trim()).toBe('');
      }
      if (v1) expect(agentWith(v1).out).toContain('it is on a cgroup v1 hierarchy');
    } finally {
      cleanupDir(plain);
    }
  }, 60_000);

  it('takes a cgroup v2 directory and records connects there', async () => {
    const agent = await startAgent(ns, cg, ['--queue-num', '7381']);
    try {
      expect(agent.stderr.join('\n')).toMatch(new RegExp(`attribution bpf-cookie \\(cgroup ${cg.path}`));
    } finally {
      expect(await agent.stop()).toBe(0);
      cleanupDir(agent.dir);
    }
  }, 60_000);
});
