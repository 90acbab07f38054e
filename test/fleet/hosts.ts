// The hosts of the fleet tests: a real agent in its own namespace with a TCP server to connect to,
// programs that connect from there, and taking it all down again.
import { spawn, type ChildProcess } from 'node:child_process';
import { Netns, TestCgroup, cleanupDir, lines, spawnIn, type RunningAgent } from '../agent/helpers.js';
import { killed } from './helpers.js';

export interface FleetHost {
  name: string;
  ns: Netns;
  agent: RunningAgent;
  /** The TCP server programs on this host connect to (greeter). */
  server: ChildProcess;
}

/** A TCP server in the namespace that greets each connection with "data for <host>". */
export async function greeter(ns: Netns, host: string, port: number): Promise<ChildProcess> {
  const code = `require('net').createServer(c=>{c.on('error',()=>{});c.end('data for ${host}\\n')}).listen(${port},'127.0.0.1',()=>console.log('ready'));`;
  const child = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lines(child).next((l) => l === 'ready');
  return child;
}

/** A program that connects to 127.0.0.1:port and prints what it read ("read …"), how it failed
 *  ("error CODE"), or "timeout" after `timeoutMs`. */
export function reader(ns: Netns, cg: TestCgroup, port: number, timeoutMs = 20_000): { proc: ChildProcess; out: ReturnType<typeof lines> } {
  const proc = spawnIn(ns, cg, [process.execPath, '-e', `
    const s = require('net').connect(${port}, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => { console.log('read ' + got.trim()); process.exit(0); });
    s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
    setTimeout(() => { console.log('timeout'); process.exit(0); }, ${timeoutMs});
  `]);
  return { proc, out: lines(proc) };
}

/** Stops every host: its server, its agent, its namespace and the agent's folder. */
export async function stopHosts(hosts: FleetHost[]): Promise<void> {
  for (const h of hosts) {
    if (process.env['SHOW_AGENT_LOG']) console.log(h.agent.stderr.join('\n'));
    await killed(h.server);
    await h.agent.stop();
    h.ns.delete();
    cleanupDir(h.agent.dir);
  }
}
