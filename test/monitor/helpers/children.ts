// Real child processes for monitor tests: a TCP server, a TCP client and a UDP client, each a small
// Node script that prints one line when ready and obeys commands on stdin ("send N", "close").
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Child {
  process: ChildProcess;
  pid: number;
  /** The first line the child printed (its ready line), split on spaces. */
  ready: string[];
  command(line: string): void;
  /** The next line the child prints after its ready line. */
  nextLine(timeoutMs?: number): Promise<string[]>;
  kill(): void;
}

const SERVER = `
const net = require('net');
const server = net.createServer((s) => { s.on('data', () => {}); s.on('error', () => {}); });
server.listen(0, process.argv[1] || '127.0.0.1', () => console.log('listening ' + server.address().port));
`;

const TCP_CLIENT = `
const net = require('net');
let s;
const open = () => {
  s = net.connect(+process.argv[1], process.argv[2] || '127.0.0.1', () => console.log('connected ' + s.localPort));
  s.on('data', () => {});
  s.on('error', () => {});
};
open();
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.startsWith('send ')) s.write(Buffer.alloc(+line.slice(5), 7));
  if (line === 'close') s.destroy();
  if (line === 'reconnect') { s.destroy(); open(); }
});
`;

const UDP_CLIENT = `
const dgram = require('dgram');
const u = dgram.createSocket('udp4');
u.connect(+process.argv[1], '127.0.0.1', () => console.log('connected ' + u.address().port));
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.startsWith('send ')) u.send(Buffer.alloc(+line.slice(5)));
  if (line === 'close') u.close();
});
`;

export type ChildKind = 'server' | 'tcp-client' | 'udp-client';
const scripts: Record<ChildKind, string> = { server: SERVER, 'tcp-client': TCP_CLIENT, 'udp-client': UDP_CLIENT };

/** Starts a child and waits (with a timeout) for its ready line. `prefix` runs it under another
 *  command, e.g. ['setpriv', '--reuid=nobody', …] or ['ip', 'netns', 'exec', NAME]. */
export async function startChild(kind: ChildKind, args: string[] = [], prefix: string[] = [], timeoutMs = 10_000): Promise<Child> {
  const argv = [...prefix, process.execPath, '-e', scripts[kind], ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const queue: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else queue.push(line);
  });
  const next = (ms: number): Promise<string> => new Promise<string>((resolve, reject) => {
    const queued = queue.shift();
    if (queued !== undefined) return resolve(queued);
    const timer = setTimeout(() => reject(new Error(`${kind} child printed nothing for ${ms} ms`)), ms);
    waiters.push((line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  const exited = new Promise<string>((_, reject) => child.once('exit', (code) => reject(new Error(`${kind} child exited with ${code} before it was ready`))));
  exited.catch(() => undefined);
  const ready = await Promise.race([next(timeoutMs), exited]);
  return {
    process: child,
    pid: child.pid!,
    ready: ready.split(' '),
    command: (line) => child.stdin!.write(`${line}\n`),
    nextLine: async (ms = 5000) => (await next(ms)).split(' '),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
