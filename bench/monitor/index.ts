// Passive monitor benchmark: the cost of one poll with 200 and with 10,000 sockets in the system, the
// parts it is made of (sock_diag dump, /proc/net fallback, owner discovery), what a per-flow exact
// lookup costs (where the traffic tracker switches from lookups to one dump), and memory.
// Reference: `ss -tanpi` (iproute2) does the same job once — dump + /proc fd scan — per run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createPassiveMonitor } from '../../src/monitor/index.js';
import { SockDiagDumper } from '../../src/native/linux/sock-diag-dump.js';
import { readProcNet } from '../../src/native/linux/proc-net.js';
import { parseAddress } from '../../src/net/address.js';
import { TrafficTracker } from '../../src/traffic/tracker.js';
import { openSocketReader } from '../../src/traffic/reader.js';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

// Holds N/2 loopback connections (N sockets: both ends live in this one process, so it also is a
// process with N descriptors for the owner scan). "more" opens one more connection.
const HOLDER = `
const net = require('net');
const pairs = +process.argv[1];
const keep = [];
const server = net.createServer((s) => { keep.push(s); s.on('error', () => {}); });
server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const open = () => new Promise((resolve) => { const c = net.connect(port, '127.0.0.1', () => resolve(c)); c.on('error', () => {}); keep.push(c); });
  for (let i = 0; i < pairs; i += 100) await Promise.all(Array.from({ length: Math.min(100, pairs - i) }, open));
  console.log('ready ' + port);
  require('readline').createInterface({ input: process.stdin }).on('line', async () => {
    const c = await open();
    console.log('more ' + c.localPort);
  });
});
`;

interface Holder {
  child: ChildProcess;
  port: number;
  more(): Promise<number>;
}

async function startHolder(sockets: number): Promise<Holder> {
  const child = spawn(process.execPath, ['-e', HOLDER, String(sockets / 2)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const queue: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  lines.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else queue.push(line);
  });
  const next = (): Promise<string> => new Promise((resolve) => {
    const l = queue.shift();
    if (l !== undefined) resolve(l);
    else waiters.push(resolve);
  });
  const ready = await next();
  return {
    child,
    port: Number(ready.split(' ')[1]),
    more: async () => {
      child.stdin!.write('more\n');
      return Number((await next()).split(' ')[1]);
    },
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(runs: number, fn: () => void): number {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return median(out);
}

const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);
const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

async function scenario(sockets: number): Promise<void> {
  const holder = await startHolder(sockets);
  try {
    const diag = new SockDiagDumper();
    const all = diag.dumpAll();
    const inSystem = all.length;
    const dumpMs = time(30, () => diag.dumpAll());
    const procMs = time(10, () => readProcNet());
    // Exact lookups with tcp_info, of the holder's own sockets.
    const mine = all.filter((s) => s.protocol === 'tcp' && s.remote.port === holder.port).slice(0, 100);
    const tuples = mine.map((s) => ({
      protocol: 'tcp' as const,
      local: { address: parseAddress(s.local.address)!, port: s.local.port },
      remote: { address: parseAddress(s.remote.address)!, port: s.remote.port },
    }));
    const lookupMs = time(20, () => {
      for (const t of tuples) diag.lookup(t);
    }) / Math.max(1, tuples.length);
    diag.close();

    // The traffic tracker (used by the agent) polling 100 tracked flows both ways.
    const reader = openSocketReader();
    const trackerMs = (strategy: 'lookup' | 'dump'): number => {
      const tracker = new TrafficTracker(reader, { strategy });
      mine.forEach((s, i) => tracker.track({ id: String(i), protocol: 'tcp', local: s.local, remote: s.remote, inode: s.inode }));
      return time(20, () => tracker.poll());
    };
    const trackLookupMs = trackerMs('lookup');
    const trackDumpMs = trackerMs('dump');
    reader.close();

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const monitor = createPassiveMonitor({ intervalMs: 3_600_000 });
    let t = performance.now();
    monitor.pollNow();
    const coldMs = performance.now() - t;
    const flows = monitor.stats().flows;
    const steadyMs = time(20, () => monitor.pollNow());
    // A new connection inside the process holding all the sockets: its owner must be found by
    // rescanning that process's descriptors.
    const newConnMs: number[] = [];
    let named = 0;
    for (let i = 0; i < 5; i++) {
      const port = await holder.more();
      t = performance.now();
      const messages = monitor.pollNow();
      newConnMs.push(performance.now() - t);
      if (messages.some((m) => m.type === 'flow' && m.flow.local.port === port && m.flow.token !== undefined)) named++;
    }
    const lastPoll = monitor.stats();
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    monitor.close();

    const ssRuns: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      spawnSync('ss', ['-tanpi'], { stdio: 'ignore' });
      ssRuns.push(performance.now() - s);
    }

    console.log(`\n== ${sockets} sockets held by one process (${inSystem} TCP/UDP sockets in the system) ==`);
    console.log(`sock_diag dump, TCP+UDP v4+v6 with tcp_info : ${fmt(dumpMs)}  (${fmt(dumpMs / inSystem)} per socket)`);
    console.log(`/proc/net fallback read + parse             : ${fmt(procMs)}`);
    console.log(`exact lookup with tcp_info, per flow         : ${fmt(lookupMs)}  → one dump costs as much as ${Math.round(dumpMs / lookupMs)} lookups`);
    console.log(`traffic tracker, ${mine.length} flows, one poll : lookups ${fmt(trackLookupMs)}, dump ${fmt(trackDumpMs)}`);
    console.log(`monitor first poll (all owners found)        : ${fmt(coldMs)}  (${flows} flows)`);
    console.log(`monitor steady poll (nothing new)            : ${fmt(steadyMs)}  = ${(steadyMs / 10).toFixed(2)} % of one core at 1 poll/s`);
    console.log(`monitor poll with a new connection in the ${sockets}-fd process: ${fmt(median(newConnMs))} (owner found in ${named}/5 polls; last: ${lastPoll.ownerScans} fd dirs, ${lastPoll.ownerLinks} links read)`);
    console.log(`monitor heap for ${flows} flows                : ${mib(heapAfter - heapBefore)}  (RSS now ${mib(process.memoryUsage().rss)})`);
    console.log(`reference: ss -tanpi, one run (incl. spawn)  : ${fmt(median(ssRuns))}`);
  } finally {
    holder.child.kill('SIGKILL');
  }
}

console.log('passive monitor: cost of one poll');
for (const n of [200, 10_000]) await scenario(n);
