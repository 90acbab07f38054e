// DNS snooping end to end in a network namespace: a DNS responder (node:dgram) answers a real query,
// the answer bytes go through the parser into the HostNameMap, and a later connection to the answered
// address shows up in the passive monitor carrying the name the client asked for.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FlowRecord } from '../../src/protocol/messages.js';
import { compileDriver, startDriver, type CompiledDriver, type DriverProcess } from '../monitor/helpers/compiled.js';
import { startChild, type Child } from '../monitor/helpers/children.js';
import { waitFor } from '../monitor/helpers/wait.js';

const ns = `flowtop-dns-${process.pid}`;
const isRoot = process.geteuid?.() === 0;
const hasIp = spawnSync('ip', ['-V']).status === 0;
const capable = isRoot && hasIp;
if (!capable && process.env.CI === 'true') {
  throw new Error('this test needs root and `ip` (iproute2) in CI to build a network namespace');
}
if (!capable) console.warn('skipping DNS namespace test: needs root and iproute2');

const RESPONDER = `
import { createSocket } from 'node:dgram';
import { response } from './test/hostnames/helpers/dns-wire.js';
const socket = createSocket('udp4');
socket.on('message', (query, peer) => {
  // The question name, read label by label (queries here are never compressed).
  const labels = [];
  for (let at = 12; at < query.length && query[at] !== 0; at += query[at] + 1) labels.push(query.subarray(at + 1, at + 1 + query[at]).toString('latin1'));
  const name = labels.join('.');
  const known = name === 'api.example.test';
  socket.send(response({
    id: query.readUInt16BE(0),
    name,
    cnames: known ? [{ target: 'edge.cdn.test', ttl: 120 }] : [],
    addresses: known ? [{ address: '198.51.100.10', ttl: 300 }] : [],
    rcode: known ? 0 : 3,
  }), peer.port, peer.address);
});
socket.bind(53, '127.0.0.53', () => console.log('dns ready'));
`;

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

describe.skipIf(!capable)('DNS snooping in a network namespace', () => {
  let compiled: CompiledDriver;
  const started: Array<Child | DriverProcess> = [];
  beforeAll(() => {
    compiled = compileDriver();
    writeFileSync(join(compiled.dir, 'responder.mjs'), RESPONDER);
    spawnSync('ip', ['netns', 'del', ns]);
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // The "remote" server's address, on the namespace's loopback (no extra kernel modules needed).
    ip('-n', ns, 'addr', 'add', '198.51.100.10/32', 'dev', 'lo');
  });
  afterAll(() => {
    for (const c of started) 'kill' in c ? c.kill() : c.process.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', ns]);
    compiled?.remove();
  });

  it('names a later flow to the answered address with the name the client asked for', async () => {
    const inNs = ['ip', 'netns', 'exec', ns];
    const dns = await startResponder(compiled, inNs);
    started.push(dns);
    const server = await startChild('server', ['198.51.100.10'], inNs);
    started.push(server);
    const port = Number(server.ready[1]);

    const driver = startDriver(compiled, { intervalMs: 100, dns: { server: '127.0.0.53', port: 53, name: 'api.example.test' } }, inNs);
    started.push(driver);
    const learnt = await waitFor('the DNS answer', () => driver.lines.find((l) => l.type === 'dns-learnt'), 10_000);
    expect(learnt.answers).toEqual([
      { type: 'CNAME', name: 'api.example.test', ttl: 120, target: 'edge.cdn.test' },
      { type: 'A', name: 'edge.cdn.test', ttl: 300, address: '198.51.100.10' },
    ]);

    // Later, a separate program connects to the answered address.
    const client = await startChild('tcp-client', [String(port), '198.51.100.10'], inNs);
    started.push(client);
    const row = await waitFor('the named row', () => driver.lines
      .flatMap((l) => (l.type === 'flow' ? [l.flow as FlowRecord] : []))
      .find((f) => f.local.port === Number(client.ready[1]) && f.remote.port === port), 10_000);
    expect(row).toMatchObject({
      direction: 'outbound',
      remote: { address: '198.51.100.10', port },
      remoteHost: { name: 'api.example.test', source: 'dns' },
      pid: client.pid,
    });
  });
});

async function startResponder(compiled: CompiledDriver, prefix: string[]): Promise<Child> {
  const argv = [...prefix, process.execPath, join(compiled.dir, 'responder.mjs')];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], cwd: compiled.dir });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('DNS responder not ready')), 10_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  return { process: child, pid: child.pid!, ready: line.split(' '), command: () => undefined, nextLine: async () => [], kill: () => child.kill('SIGKILL') };
}
