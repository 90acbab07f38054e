// Attack: PID reuse against the agent's group check. A user outside the `flowtop` group (nobody)
// connects to a socket whose mode was loosened (0666), forks a child that keeps the connection, and
// exits; a process of a group member is then started on the freed PID. An agent that looked the peer's
// groups up by PID (/proc/<pid>/status) would now authorise the child's connection. The agent runs in
// its own PID namespace so the test can steer PIDs (ns_last_pid) without racing the host. The child
// must get nothing but a refusal: no hello, no snapshot, no rule added.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, buildAgent, cleanupDir, hostRules, lines, removeBuild, skipUnlessCapable, waitFor } from '../agent/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();
const NOBODY = 65534;
const TRIES = 5;

// As nobody: connect, fork a child that keeps the connection, print the parent's PID and exit. The
// child waits for a line on stdin, then subscribes, asks for a rule and prints what the agent said.
const ATTACKER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
# Stay until the agent has accepted (and read our credentials): it says something first.
s.recv(1, socket.MSG_PEEK)
if os.fork() == 0:
    sys.stdin.readline()
    try:
        s.sendall(b'{"type":"subscribe","protocol":1,"client":{"name":"evil","version":"1"}}\\n'
                  b'{"type":"rule-add","rule":{"action":"allow","duration":{"kind":"always"},"note":"by the attacker"},"ref":"evil"}\\n'
                  b'{"type":"rules-list","ref":"list"}\\n')
    except OSError:
        pass
    s.settimeout(3)
    data = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
            if b'"ref":"list"' in data: break
    except OSError:
        pass
    print(json.dumps(data.decode('utf8', 'replace')), flush=True)
    os._exit(0)
print(os.getpid(), flush=True)
os._exit(0)
`;

describe.skipIf(skip)('adversarial: a reused PID passes for a group member', () => {
  let ns: Netns;
  let before: string;
  let agent: ChildProcess;
  let agentPid = 0;
  let dir: string;
  let socket: string;
  let gid: number;
  const stderr: string[] = [];

  beforeAll(async () => {
    before = hostRules();
    const dist = buildAgent();
    ns = new Netns();
    dir = mkdtempSync(join(tmpdir(), 'flowtop-pidns-'));
    chmodSync(dir, 0o755);
    socket = join(dir, 'agent.sock');
    // The agent is PID 1 of a new PID namespace with its own /proc; everything below joins it.
    agent = spawn('unshare', ['--pid', '--fork', '--mount-proc', ...ns.enter, process.execPath, join(dist, 'run-agent.mjs'),
      'agent', '--no-history', '--socket', socket, '--rules', join(dir, 'rules.json'), '--queue-num', '7720', '--no-bpf'], { stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
    await waitFor(`the agent to be ready (${stderr.join('')})`, () => {
      if (agent.exitCode !== null) throw new Error(`agent exited: ${stderr.join('')}`);
      return stderr.join('').includes('ready on');
    }, 30_000);
    // the namespace's init (unshare's child) is the agent: find its host PID for nsenter
    agentPid = Number(execFileSync('pgrep', ['-P', String(agent.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
    gid = Number(execFileSync('getent', ['group', 'flowtop'], { encoding: 'utf8' }).split(':')[2]);
    chmodSync(socket, 0o666); // loosened by someone: only the peer check stands
  }, 90_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      if (agentPid) process.kill(agentPid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    ns?.delete();
    if (dir) cleanupDir(dir);
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  /** Runs a shell in the agent's PID and mount namespaces (its /proc). */
  function inPidns(script: string): string {
    return execFileSync('nsenter', ['-t', String(agentPid), '-p', '-m', 'sh', '-c', script], { encoding: 'utf8' });
  }

  it('the child of a departed non-member is refused even when a member now has the PID', async () => {
    let tries = 0;
    let bypasses = 0;
    let crashes = 0;
    let reused = 0;
    const members: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      tries++;
      const attacker = spawn('nsenter', ['-t', String(agentPid), '-p', '-m', 'setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '/usr/bin/python3', '-c', ATTACKER, socket], { stdio: ['pipe', 'pipe', 'inherit'] });
      const gone = new Promise((r) => attacker.once('exit', r));
      const out = lines(attacker);
      const parentPid = Number(await out.next());
      await gone; // the parent is gone and reaped: its PID is free
      // A group member's process on the freed PID (ns_last_pid: the next PID handed out is +1).
      const member = Number(inPidns(`echo ${parentPid - 1} > /proc/sys/kernel/ns_last_pid; setpriv --reuid ${NOBODY} --regid ${NOBODY} --groups ${gid} sleep 60 >/dev/null 2>&1 </dev/null & echo $!`).trim());
      members.push(member);
      if (member === parentPid) {
        reused++;
        // the PID now names a member of the group, by /proc (once setpriv, forked on that PID, has
        // set its groups: it can be read a moment before)
        const groups = await waitFor('the member\'s groups', () => {
          const line = inPidns(`grep '^Groups:' /proc/${member}/status`);
          return line.includes(String(gid)) ? line : undefined;
        }, 5000).catch(() => inPidns(`grep '^Groups:' /proc/${member}/status`));
        expect(groups).toContain(String(gid));
      }
      attacker.stdin?.write('go\n');
      const said = JSON.parse(await out.next(() => true, 10_000).catch((e: Error) => { throw new Error(`${e.message}; lines: ${JSON.stringify(out.all)}; agent: ${stderr.join('')}`); })) as string;
      const replies = said.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; code?: string; ref?: string });
      // anything but one refusal is a bypass: a hello (host name, mode), a snapshot, a rule added
      const seen = replies.map((m) => `${m.type}${m.code ? `:${m.code}` : ''}`);
      if (seen.join() !== 'error:not-authorised') {
        bypasses++;
        process.stderr.write(`peer-pid-reuse: try ${i} (PID ${member === parentPid ? 'reused' : 'not reused'}) got ${seen.join(', ')}\n`);
      }
      if (agent.exitCode !== null) crashes++;
    }
    inPidns(`kill ${members.join(' ')} 2>/dev/null; true`);
    // nothing was added by the attacker
    const rulesFile = join(dir, 'rules.json');
    if (existsSync(rulesFile)) expect(spawnSync('cat', [rulesFile], { encoding: 'utf8' }).stdout).not.toContain('by the attacker');
    reportAttack('peer-pid-reuse', { tries, bypasses, crashes });
    expect(reused).toBeGreaterThan(0); // the attack really put a member on the PID
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 120_000);
});


