// Ctrl-C held down while the machine is busy: the terminal sends SIGINT to the agent's whole process
// group every few ms until the agent has exited. Every tool the agent spawns is in that group from its
// fork until its setsid, and under load that window is wide: the removal tools died there, and the
// agent exited leaving its chains — with --fail-closed, a namespace where every new connection was
// refused until the next start. The rules must be gone every time, and connections work again.
// (Robustness, not an attack: only root or the agent's own terminal can signal root's agent.)
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, connectScript, lines, skipUnlessCapable, spawnIn, startAgentJob, type Netns, type TestCgroup } from './helpers.js';
import { useNamespace } from './fixture.js';

const skip = skipUnlessCapable();
const PORT = 7330;
const QUEUE = 7331;
const ROUNDS = 3;
/** Busy loops beside the agent (the machine has at least two cores; three keep both busy). */
const BUSY_LOOPS = 3;
/** The key repeat: one SIGINT to the agent's group this often, from a process of its own so that the
 *  test's own event loop, starved by the load, does not slow it down. */
const SIGINT_EVERY_S = 0.002;
/** Ctrl-C is held until the agent exits, or this long at most. */
const HOLD_LIMIT_S = 20;

const HOLD_CTRL_C = `
import os, sys, time
group, every, limit = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
sent = 0
while time.monotonic() < end:
    try:
        os.killpg(group, 2)
    except ProcessLookupError:
        break
    sent += 1
    time.sleep(every)
print(sent)
`;

/** Everything of ours in the namespace's rulesets: iptables, ip6tables and nftables. */
function ourRules(ns: Netns): string {
  return ns.sh('{ iptables-save; ip6tables-save; nft list ruleset; } 2>/dev/null | grep -i flowtop; true').trim();
}

function removeOurRules(ns: Netns): void {
  ns.sh(`for t in iptables ip6tables; do
    $t -w -t mangle -S | grep -- '-j FLOWTOP-' | sed 's/^-A/-D/' | while read -r r; do eval $t -w -t mangle $r; done
    for c in $($t -w -t mangle -S | awk '/^-N FLOWTOP-/{print $2}'); do $t -w -t mangle -F $c; $t -w -t mangle -X $c; done
  done 2>/dev/null; nft delete table inet flowtop 2>/dev/null; true`);
}

/** The agent as a shell would start it: the leader of its own process group. */
async function connects(ns: Netns, cg: TestCgroup): Promise<string> {
  const child = spawnIn(ns, cg, connectScript(PORT, 1500));
  const result = await lines(child).next((l) => !l.startsWith('pid'), 6000);
  child.stdin?.end();
  return result;
}

describe.skipIf(skip)('agent: Ctrl-C held down under load', () => {
  const space = useNamespace({ servers: [PORT] });
  const busy: ChildProcess[] = [];

  afterAll(() => {
    for (const loop of busy) loop.kill('SIGKILL');
    if (space.ns) removeOurRules(space.ns);
  });

  it('removes every firewall rule of its own before exiting, round after round, and connections work after', async () => {
    for (let i = 0; i < BUSY_LOOPS; i++) busy.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-held-'));
    chmodSync(dir, 0o755);
    const outcomes: string[] = [];
    const failures: string[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const agent = await startAgentJob(space.ns, space.cg, dir, QUEUE);
        const held = Date.now();
        const ctrlC = spawn('python3', ['-c', HOLD_CTRL_C, String(agent.proc.pid), String(SIGINT_EVERY_S), String(HOLD_LIMIT_S)], { stdio: ['ignore', 'pipe', 'inherit'] });
        const sent = lines(ctrlC).next(undefined, (HOLD_LIMIT_S + 5) * 1000);
        const stopped = await Promise.race([agent.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), (HOLD_LIMIT_S + 5) * 1000))]);
        if (!stopped) {
          agent.proc.kill('SIGKILL');
          await agent.exited;
        }
        const signals = await sent.catch(() => '?');
        const left = ourRules(space.ns);
        outcomes.push(`round ${round + 1}: ${signals} SIGINTs, ${stopped ? `exited after ${Date.now() - held} ms` : 'still running: killed'}, ${left ? 'rules LEFT' : 'no rules left'}`);
        if (!stopped) failures.push(`round ${round + 1}: the agent did not exit within ${HOLD_LIMIT_S + 5} s of Ctrl-C`);
        // hundreds of signals: the repeat is said once, not once each
        const repeats = agent.stderr.join('').split('\n').filter((l) => l.includes('already stopping')).length;
        if (repeats > 1) failures.push(`round ${round + 1}: "already stopping" said ${repeats} times`);
        if (left) {
          const said = agent.stderr.join('').split('\n').filter((l) => l && !l.includes('already stopping'));
          failures.push(`round ${round + 1}: left ${left.split('\n').filter((l) => /^(:|-N |\s*chain |table )/.test(l.trim())).join(', ')} (the agent said: ${said.join(' | ')})`);
          removeOurRules(space.ns); // the next round starts clean
        }
      }
    } finally {
      process.stderr.write(`held Ctrl-C under load:\n  ${outcomes.join('\n  ')}\n`);
      cleanupDir(dir);
    }
    expect(failures).toEqual([]);
    // --fail-closed: rules left behind would refuse this connection
    for (const loop of busy.splice(0)) loop.kill('SIGKILL');
    expect(await connects(space.ns, space.cg)).toMatch(/^connected/);
  }, 90_000);
});
