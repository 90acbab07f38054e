// A short-lived program (a curl allowed by a rule) is often looked up while it exits: its memory, and
// with it /proc/PID/exe, is released before it has closed its files and become a zombie. That is a
// process that is gone, said once — not a red "insecure" with an ENOENT from /proc.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeLinuxToken } from '../../src/native/linux/token.js';
import { LinuxResolver } from '../../src/native/linux/process.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** PF_* flags of a live process (field 9 of /proc/PID/stat), or undefined once it is gone. */
function flagsOf(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[6]);
  } catch {
    return undefined;
  }
}

describe.skipIf(process.platform !== 'linux')('Linux attribution of an exiting process', () => {
  it('is gone with one reason while the process closes its files on the way out', async () => {
    // Thousands of open pipes: closing them at exit keeps the process in that state long enough to look.
    const child = spawn(PYTHON, ['-c', `
import os, resource, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
keep = [os.pipe() for _ in range(min(100000, hard // 2 - 100))]
print('ready', flush=True)
sys.stdin.readline()
os._exit(0)
`], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout!.once('data', r));
    const token = makeLinuxToken(child.pid!)!;
    const resolver = new LinuxResolver();
    expect(resolver.resolveOne(token).trust).toBe('secure');
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.write('exit\n');
    let seen: ReturnType<LinuxResolver['resolveOne']> | undefined;
    for (;;) {
      const flags = flagsOf(child.pid!);
      if (flags === undefined) break;
      if (flags & 0x4 /* PF_EXITING */) {
        seen = resolver.resolveOne(token);
        break;
      }
    }
    await exited;
    expect(seen, 'the exit was never seen in progress').toBeDefined();
    expect(seen!.trust).toBe('gone');
    expect(seen!.reason?.message).toBe('the process exited before it could be checked');
    expect(seen!.reason?.message).not.toMatch(/ENOENT|kernel thread/);
  }, 30_000);
});
