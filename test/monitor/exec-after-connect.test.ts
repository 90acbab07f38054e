// The passive monitor has no connect record: it names the process it finds holding a socket. A child
// that connects on a socket its parent keeps, then execs another program, leaves two holders running
// different programs; the monitor must not vouch for either program (it cannot tell which connected),
// whichever it happened to scan first.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ExtensionMessage, FlowRecord } from '../../src/protocol/messages.js';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { LinuxResolver } from '../../src/native/linux/process.js';
import { createPassiveMonitor } from '../../src/monitor/index.js';
import { waitFor } from './helpers/wait.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const cleanup: Array<() => void> = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

describe('passive monitor: a program exec\'d after the connect', () => {
  it('a socket held by a parent and by its child that connected and exec\'d sleep is never shown secure as either program', async () => {
    const server = net.createServer((c) => c.on('error', () => {})).listen(0, '127.0.0.1');
    cleanup.push(() => server.close());
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as net.AddressInfo).port;

    const monitor = createPassiveMonitor({ intervalMs: 100 });
    const messages: ExtensionMessage[] = [];
    const sub = monitor.events$.subscribe((e) => messages.push(e.message));
    cleanup.push(() => {
      sub.unsubscribe();
      monitor.close();
    });

    // The parent runs long enough to be scanned (with no socket) before it forks: the child is then
    // the only process the next poll scans as new, and the first seen holding the socket.
    const child: ChildProcess = spawn(PYTHON, ['-c', `
import os, socket, sys, time
time.sleep(1.0)
s = socket.socket(); os.set_inheritable(s.fileno(), True)
pid = os.fork()
if pid == 0:
    s.connect(('127.0.0.1', ${port}))
    os.execv('/bin/sleep', ['sleep', '30'])
while s.getsockname()[1] == 0: time.sleep(0.01)
print(s.getsockname()[1], pid, flush=True)
sys.stdin.read()
`], { stdio: ['pipe', 'pipe', 'inherit'] });
    cleanup.push(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const [local, childPid] = (await waitFor('the ports', () => /^\d+ \d+\n/.test(out) && out.trim().split(' ').map(Number), 10_000));
    cleanup.push(() => { try { process.kill(childPid!, 'SIGKILL'); } catch { /* gone */ } });

    const flow = await waitFor('the flow with an owner', () => messages.flatMap((m) => (m.type === 'flow' ? [m.flow] : [])).filter((f: FlowRecord) => f.local.port === local && f.token !== undefined).at(-1), 10_000);
    expect([child.pid, childPid]).toContain(flow.pid);
    expect(decodeLinuxToken(Buffer.from(flow.token!, 'base64'))?.execTag).toBe(0);
    const seen = new LinuxResolver().resolveOne(Buffer.from(flow.token!, 'base64'));
    expect(seen.trust).toBe('insecure');
    expect(seen.reason?.message).toMatch(/does not say which program/);
  }, 30_000);
});
