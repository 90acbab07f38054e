// Attack: connect as fast as possible while a --fail-closed agent restarts after a SIGKILL. The
// restarted agent blocks (reject) every flow it judges, so any connection that gets established was let
// through unjudged: the old rules must stay until the new ones are in place (install, then swap, then
// delete), never removed first.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import {
  cleanupDir, lines, skipUnlessCapable, startAgent, } from '../agent/helpers.js';
import { useNamespace } from '../agent/fixture.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const PORT = 7330;

/** Opens a non-blocking connection every millisecond for `seconds`, then prints how many it tried and
 *  how many were established. */
const FLOOD = `
import resource, select, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, seconds = int(sys.argv[1]), float(sys.argv[2])
socks = []
print('start', flush=True)
t0 = time.time()
while time.time() - t0 < seconds:
    s = socket.socket(); s.setblocking(False)
    try: s.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    except OSError: pass
    socks.append(s)
    time.sleep(0.001)
time.sleep(0.3)
ok = 0
for s in socks:
    p = select.poll(); p.register(s, select.POLLOUT)
    if p.poll(0) and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        try: s.getpeername(); ok += 1
        except OSError: pass
print('result', len(socks), ok, flush=True)
`;

describe.skipIf(skip)('adversarial: --fail-closed while the agent restarts', () => {
  const space = useNamespace({ servers: [PORT] });

  it('no connection is established unjudged between a SIGKILL and the restarted agent being ready', async () => {
    const flags = ['--queue-num', '7331', '--fail-closed', '--default', 'block', '--block-mode', 'reject', '--timeout', '100ms', '--no-bpf'];
    const counts = { tries: 0, bypasses: 0, crashes: 0 };
    let agent = await startAgent(space.ns, space.cg, flags);
    const dir = agent.dir;
    try {
      for (let round = 0; round < 3; round++) {
        await agent.kill();
        const flood = spawn(space.ns.enter[0]!, [...space.ns.enter.slice(1), 'python3', '-c', FLOOD, String(PORT), '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
        const out = lines(flood);
        await out.next((l) => l === 'start');
        agent = await startAgent(space.ns, space.cg, flags, dir);
        const [, tried, established] = (await out.next((l) => l.startsWith('result'), 20_000)).split(' ').map(Number);
        counts.tries += tried!;
        counts.bypasses += established!;
      }
    } catch (error) {
      counts.crashes++;
      throw error;
    } finally {
      await agent.stop();
      cleanupDir(dir);
      reportAttack('fail-closed-restart', counts);
    }
    expect(counts.tries).toBeGreaterThan(1000);
    expect(counts.bypasses).toBe(0);
    expect(counts.crashes).toBe(0);
  }, 90_000);
});
