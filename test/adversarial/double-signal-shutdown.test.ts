// Attack: a second signal while the agent shuts down (two SIGINTs 50 ms apart, or Ctrl-C pressed twice
// in a terminal, which signals the whole process group, the agent's iptables children included). It
// must never abandon the cleanup: chains, BPF programs, socket and status file all go, and with
// --fail-closed new connections work again once the agent has exited.
import { afterAll, describe, expect, it } from 'vitest';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ATTACH, queryAttached } from '../../src/native/linux/bpf-syscall.js';
import {
  Netns, TestCgroup, cleanupDir, connectScript, lines, skipUnlessCapable, spawnIn,
  startAgentJob,
} from '../agent/helpers.js';
import { useNamespace } from '../agent/fixture.js';
import { mkdtempSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const PORT = 7320;

function attached(cg: TestCgroup): number {
  const fd = openSync(cg.path, 'r');
  try {
    return queryAttached(fd, ATTACH.INET4_CONNECT).length;
  } finally {
    closeSync(fd);
  }
}

function ourRules(ns: Netns): string {
  return ns.sh('iptables -w -t mangle -S 2>/dev/null | grep FLOWTOP; nft list table inet flowtop 2>/dev/null; true').trim();
}

/** Starts the agent in its own process group (as a shell's job would be), ready when it says so. */
async function connects(ns: Netns, cg: TestCgroup): Promise<boolean> {
  const child = spawnIn(ns, cg, connectScript(PORT, 1500));
  const result = await lines(child).next((l) => !l.startsWith('pid'), 6000);
  child.stdin?.end();
  return result.startsWith('connected');
}

describe.skipIf(skip)('adversarial: a second signal during shutdown', () => {
  const space = useNamespace({ servers: [PORT] });

  afterAll(() => {
    space.ns?.sh('iptables -w -t mangle -F OUTPUT 2>/dev/null; true');
  });

  it('two SIGINTs 50 ms apart, or a burst of them to the whole process group, never leave chains, programs or the socket behind', async () => {
    const counts = { tries: 0, bypasses: 0, crashes: 0 };
    const left: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-signal-'));
    chmodSync(dir, 0o755);
    try {
      for (let i = 0; i < 4; i++) {
        const agent = await startAgentJob(space.ns, space.cg, dir, 7321);
        const wholeGroup = i % 2 === 1;
        const signal = (): boolean => (wholeGroup ? process.kill(-agent.proc.pid!, 'SIGINT') : agent.proc.kill('SIGINT'));
        signal();
        await new Promise((r) => setTimeout(r, 50));
        try { signal(); } catch { /* already gone */ }
        // Ctrl-C held down: the terminal signals the whole group (the agent's children too) again and again
        const burst = wholeGroup ? setInterval(() => { try { signal(); } catch { /* gone */ } }, 15) : undefined;
        void agent.exited.then(() => clearInterval(burst));
        const timedOut = await Promise.race([agent.exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 15_000))]);
        counts.tries++;
        if (timedOut) {
          counts.crashes++;
          agent.proc.kill('SIGKILL');
          await agent.exited;
        }
        const residue = [
          ourRules(space.ns) ? 'firewall chains' : '',
          attached(space.cg) > 0 ? 'BPF programs' : '',
          existsSync(agent.socket) ? 'socket' : '',
          existsSync(`${agent.socket}.status.json`) ? 'status file' : '',
        ].filter(Boolean);
        if (residue.length > 0) {
          counts.bypasses++;
          left.push(`${wholeGroup ? 'group' : 'pid'}: ${residue.join(', ')} (left: ${ourRules(space.ns)}; agent said: ${agent.stderr.join('').split('\n').filter((l) => !l.includes('already stopping')).join(' | ')})`);
          // clear it so the next run starts clean
          space.ns.sh('iptables -w -t mangle -F OUTPUT; for c in $(iptables -w -t mangle -S | awk \'/^-N FLOWTOP/{print $2}\'); do iptables -w -t mangle -F $c; iptables -w -t mangle -X $c; done; true');
        } else if (!(await connects(space.ns, space.cg))) {
          counts.bypasses++;
          left.push('connections blocked after the agent exited');
        }
      }
    } finally {
      cleanupDir(dir);
    }
    reportAttack('double-signal-shutdown', counts);
    expect(left).toEqual([]);
    expect(counts.bypasses).toBe(0);
    expect(counts.crashes).toBe(0);
  }, 120_000);
});
