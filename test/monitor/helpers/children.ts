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
  kill(): void;
}

const SERVER = `
const net = require('net');
const server = net.createServer((s) => { s.on('data', () => {}); s.on('error', () => {}); });
server.listen(0, process.argv[1] || '127.0.0.1', () => console.log('listening ' + server.address().port));
`;

const TCP_CLIENT = `
const net = require('net');
const s = net.connect(+process.argv[1], process.argv[2] || '127.0.0.1', () => console.log('connected ' + s.localPort));
s.on('data', () => {});
s.on('error', () => {});
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.startsWith('send ')) s.write(Buffer.alloc(+line.slice(5), 7));
  if (line === 'close') s.destroy();
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
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} child not ready after ${timeoutMs} ms`)), timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} child exited with ${code} before it was ready`));
    });
  });
  return {
    process: child,
    pid: child.pid!,
    ready: ready.split(' '),
    command: (line) => child.stdin!.write(`${line}\n`),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
