// Attack: an unprivileged user (nobody) who can write the --socket directory plants symlinks to a
// root-owned 0600 file where the agent creates its files — at the status file's temporary name, and
// renamed over the socket path in a loop while the agent binds, chmods and chowns it. The agent must
// never write, chmod or chown through such a name: the target keeps its bytes, mode and owner. A
// directory others can write is refused unless it is sticky (like /tmp), and then only a path that is
// root's own is used.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Netns, TestCgroup, buildAgent, cleanupDir, hostRules, removeBuild, skipUnlessCapable, startAgent,
} from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const NOBODY = 65534;

/** As nobody: plants symlinks to `target` at the status file's temporary name and renames fresh ones
 *  over the socket path as fast as it can, until killed. */
function attacker(dir: string, target: string, waitForSocket: boolean): ChildProcess {
  const code = `
import os, sys, time
d, target, wait = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
sock = os.path.join(d, 'agent.sock')
for name in ('agent.sock.status.json.tmp', 'agent.sock.status.json'):
    try: os.symlink(target, os.path.join(d, name))
    except OSError: pass
print('ready', flush=True)
while wait and not os.path.lexists(sock): time.sleep(0.0005)
i = 0
while True:
    i += 1
    tmp = os.path.join(d, '.n%d' % (i % 50))
    try:
        os.symlink(target, tmp)
        os.rename(tmp, sock)
    except OSError:
        try: os.unlink(tmp)
        except OSError: pass
`;
  return spawn('python3', ['-c', code, dir, target, waitForSocket ? '1' : '0'], { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'inherit'] });
}

async function ready(child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', () => reject(new Error('attacker exited')));
  });
}

describe.skipIf(skip)('adversarial: symlinks planted in the socket directory', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let before: string;
  let secrets: string;

  beforeAll(() => {
    before = hostRules();
    buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    secrets = mkdtempSync(join(tmpdir(), 'flowtop-secret-'));
  }, 60_000);

  afterAll(() => {
    ns?.delete();
    cg?.delete();
    cleanupDir(secrets);
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('never writes, chmods or chowns a root file through a planted name; refuses unsafe directories', async () => {
    const counts = { tries: 0, bypasses: 0, crashes: 0 };
    const outcomes: string[] = [];
    // world-writable, world-writable and sticky (like /tmp), owned by nobody
    // world-writable; sticky (like /tmp) with a symlink already at the socket path; sticky with the
    // renames starting once the socket appears; owned by nobody
    const layouts: Array<{ name: string; mode: number; owner: number; refused: boolean; waitForSocket?: boolean }> = [
      { name: 'world-writable', mode: 0o777, owner: 0, refused: true },
      { name: 'sticky', mode: 0o1777, owner: 0, refused: true },
      { name: 'sticky-race', mode: 0o1777, owner: 0, refused: false, waitForSocket: true },
      { name: 'owned-by-nobody', mode: 0o755, owner: NOBODY, refused: true },
    ];
    for (let round = 0; round < 2; round++) {
      for (const layout of layouts) {
        const dir = mkdtempSync(join(tmpdir(), 'flowtop-sockdir-'));
        chmodSync(dir, layout.mode);
        chownSync(dir, layout.owner, layout.owner);
        const target = join(secrets, `secret-${round}-${layout.name}`);
        writeFileSync(target, 'root only\n', { mode: 0o600 });
        const evil = attacker(dir, target, layout.waitForSocket ?? false);
        await ready(evil);
        counts.tries++;
        let started = false;
        let failure = '';
        try {
          // (startAgent makes its own directory 0755: the socket under test is named by the last --socket)
          const agent = await startAgent(ns, cg, ['--queue-num', '7341', '--no-bpf', '--rules', join(secrets, 'rules.json'), '--socket', join(dir, 'agent.sock')], secrets);
          started = true;
          await new Promise((r) => setTimeout(r, 1200)); // a status write or two
          // the agent's own status file is there, root's, and not the target
          const status = lstatSync(join(dir, 'agent.sock.status.json'));
          if (!status.isFile() || status.uid !== 0) outcomes.push('unexpected: no status file of root\'s');
          const code = await agent.stop();
          if (code !== 0) counts.crashes++;
        } catch (error) {
          failure = (error as Error).message;
        } finally {
          evil.kill('SIGKILL');
        }
        const st = statSync(target);
        const intact = readFileSync(target, 'utf8') === 'root only\n' && (st.mode & 0o7777) === 0o600 && st.uid === 0 && st.gid === 0;
        if (!intact) counts.bypasses++;
        outcomes.push(`${layout.name}: ${started ? 'started' : 'refused'}${intact ? '' : ' TARGET CHANGED'}`);
        if (layout.refused && started) counts.bypasses++;
        if (!layout.refused && !started) outcomes.push(`unexpected failure: ${failure}`);
        cleanupDir(dir);
      }
    }
    reportAttack('socket-directory-symlinks', counts);
    process.stderr.write(`${outcomes.join('\n')}\n`);
    expect(outcomes.filter((o) => o.includes('CHANGED') || o.includes('unexpected'))).toEqual([]);
    expect(counts.bypasses).toBe(0);
    expect(counts.crashes).toBe(0);
  }, 120_000);
});
