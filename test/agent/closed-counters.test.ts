// The close-counters map: each TCP socket of the cgroup leaves its final counters there as it closes,
// and the agent takes them all with a few batch reads per poll instead of one lookup per ended flow.
// Every socket must be found with its own bytes, once, however many closed between two reads; a
// socket that closes after a read is still found by asking the map.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { SocketRecorder } from '../../src/native/linux/bpf.js';
import { execFileSync } from 'node:child_process';
import { Netns, TestCgroup, lines, skipUnlessCapable, spawnIn } from './helpers.js';

const skip = skipUnlessCapable();
const LOOPBACK = ipv4Words('127.0.0.1');

/** One end of a connection: its address as the map keys it (::ffff:a.b.c.d as four words) and port. */
interface End {
  address: number[];
  port: number;
}

function ipv4Words(dotted: string): number[] {
  const [a, b, c, d] = dotted.split('.').map(Number);
  return [0, 0, 0xffff, ((a! << 24) | (b! << 16) | (c! << 8) | d!) >>> 0];
}

/** A python3 child in the cgroup that opens `count` connections one after the other, each from its
 *  own loopback address (127.0.x.y: a 4-tuple is never reused, as a port alone may be on loopback),
 *  sends `1 + i % 97` bytes on the i-th, waits for the server to close it, and closes it. */
async function connectionsFrom(cg: TestCgroup, port: number, count: number, first = 0): Promise<End[]> {
  const child = spawn('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec python3 -c "
import socket
for i in range(${first}, ${first + count}):
    s = socket.socket()
    s.bind(('127.%d.%d.%d' % (1 + i // 62500, i // 250 % 250, 1 + i % 250), 0))
    s.connect(('127.0.0.1', ${port}))
    s.sendall(b'x' * (1 + i % 97))
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(*s.getsockname(), flush=True)
    s.close()
print('done', flush=True)
"`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ends: End[] = [];
  const out = lines(child);
  for (;;) {
    const line = await out.next(() => true, 60_000);
    if (line === 'done') return ends;
    const [address, local] = line.split(' ');
    ends.push({ address: ipv4Words(address!), port: Number(local) });
  }
}

describe.skipIf(skip)('final counters of closed TCP sockets, read in batches', () => {
  let cg: TestCgroup;
  let server: net.Server;
  let port: number;
  let recorder: SocketRecorder;

  beforeAll(async () => {
    cg = new TestCgroup();
    // reads all the client sends, then closes its end: the client's socket goes on to CLOSE
    server = net.createServer((c) => {
      c.on('error', () => {});
      c.resume();
      c.on('end', () => c.end());
    }).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as net.AddressInfo).port;
    recorder = SocketRecorder.attach(cg.path);
    expect(recorder.closeCountersNote).toBeUndefined();
  });

  afterAll(() => {
    recorder?.close();
    server?.close();
    cg?.delete();
  });

  it('finds each of 5,000 sockets closed between two reads with its own bytes, and only once', async () => {
    const ends = await connectionsFrom(cg, port, 5000);
    expect(ends).toHaveLength(5000);
    expect(recorder.closedSockets!.collect()).toHaveLength(5000);
    const wrong: string[] = [];
    ends.forEach((local, i) => {
      const c = recorder.closedSockets!.counters(local.address, local.port, LOOPBACK, port, true, 'after-collect');
      if (c?.tx !== 1 + (i % 97) || c.rx !== 0) wrong.push(`${local.address[3]!.toString(16)}:${local.port}: ${JSON.stringify(c)}`);
    });
    expect(wrong).toEqual([]);
    // taken: not found a second time, in what was read or in the map
    expect(recorder.closedSockets!.counters(ends[0]!.address, ends[0]!.port, LOOPBACK, port, true, 'anywhere')).toBeUndefined();
  }, 90_000);

  it('keeps what one read took for the next poll, and asks the map for a socket that closed after the read', async () => {
    const [early] = await connectionsFrom(cg, port, 1, 10_000);
    recorder.closedSockets!.collect();
    const [late] = await connectionsFrom(cg, port, 1, 10_001);
    // the next read shifts the first one's entry to the older generation: still found
    recorder.closedSockets!.collect();
    expect(recorder.closedSockets!.counters(early!.address, early!.port, LOOPBACK, port, true, 'after-collect')).toMatchObject({ rx: 0, tx: 1 + (10_000 % 97) });
    expect(recorder.closedSockets!.counters(late!.address, late!.port, LOOPBACK, port, true, 'after-collect')).toMatchObject({ rx: 0, tx: 1 + (10_001 % 97) });
    // one closed after the last read: not in what was read, but in the map
    const [after] = await connectionsFrom(cg, port, 1, 10_002);
    expect(recorder.closedSockets!.counters(after!.address, after!.port, LOOPBACK, port, true, 'after-collect')).toBeUndefined();
    expect(recorder.closedSockets!.counters(after!.address, after!.port, LOOPBACK, port, true, 'anywhere')).toMatchObject({ rx: 0, tx: 1 + (10_002 % 97) });
  }, 30_000);

  it('keeps what was read for a second however often the map is read, then drops what nobody asked for', async () => {
    const [kept, unasked] = await connectionsFrom(cg, port, 2, 10_003);
    for (let i = 0; i < 5; i++) recorder.closedSockets!.collect();
    // read five times within the second (a busy main thread's flow arrives late): still there
    expect(recorder.closedSockets!.counters(kept!.address, kept!.port, LOOPBACK, port, true, 'collected')).toMatchObject({ rx: 0, tx: 1 + (10_003 % 97) });
    // over two seconds and two more reads later, the one nobody asked for is gone
    await new Promise((r) => setTimeout(r, 1100));
    recorder.closedSockets!.collect();
    await new Promise((r) => setTimeout(r, 1100));
    recorder.closedSockets!.collect();
    expect(recorder.closedSockets!.counters(unasked!.address, unasked!.port, LOOPBACK, port, true, 'anywhere')).toBeUndefined();
  }, 30_000);
});

describe.skipIf(skip)('which ends of a connection leave their counters', () => {
  let cg: TestCgroup;
  let here: Netns;
  let there: Netns;
  let recorder: SocketRecorder;
  const PORT = 7420;
  const link = `ftc${process.pid % 100000}`;

  beforeAll(() => {
    cg = new TestCgroup();
    here = new Netns();
    there = new Netns();
    execFileSync('ip', ['link', 'add', `${link}a`, 'netns', here.name, 'type', 'veth', 'peer', 'name', `${link}b`, 'netns', there.name]);
    here.sh(`ip addr add 10.233.0.1/24 dev ${link}a && ip link set ${link}a up`);
    there.sh(`ip addr add 10.233.0.2/24 dev ${link}b && ip link set ${link}b up`);
    recorder = SocketRecorder.attach(cg.path);
  });

  afterAll(() => {
    recorder?.close();
    here?.delete();
    there?.delete();
    cg?.delete();
  });

  /** Connects from `ns` to host:PORT, sends `bytes` bytes, waits for the server to close; its local port. */
  async function connectFrom(ns: Netns, host: string, bytes: number): Promise<number> {
    const child = spawnIn(ns, cg, ['python3', '-c', `
import socket
s = socket.create_connection(('${host}', ${PORT}))
s.sendall(b'x' * ${bytes})
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(s.getsockname()[1], flush=True)
s.close()
`]);
    return Number(await lines(child).next(() => true, 10_000));
  }

  it('the accepted end of a local connection leaves none (its connecting end is the flow); one from elsewhere does', async () => {
    const server = spawnIn(here, cg, ['python3', '-c', `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', ${PORT}))
s.listen()
print('ready', flush=True)
for _ in range(2):
    a, peer = s.accept()
    while a.recv(100):
        pass
    a.close()
`]);
    try {
      await lines(server).next((l) => l === 'ready', 10_000);
      const before = Date.now();
      const local = await connectFrom(here, '127.0.0.1', 5);
      const localClosed = Date.now();
      const remote = await connectFrom(there, '10.233.0.1', 7);
      await new Promise((r) => setTimeout(r, 200)); // the accepted ends close just after the clients see EOF
      const closed = recorder.closedSockets!;
      const fresh = closed.collect()!;
      const words = (dotted: string): Uint32Array => Uint32Array.from(ipv4Words(dotted));
      // the local connection: its connecting end, with what it sent; not its accepted end
      const connecting = closed.counters(words('127.0.0.1'), local, words('127.0.0.1'), PORT, true, 'collected');
      expect(connecting).toMatchObject({ rx: 0, tx: 5 });
      // when it closed, as the kernel stamped it: after the client began, by the time it said so
      expect(connecting!.closedAt).toBeGreaterThanOrEqual(before - 5);
      expect(connecting!.closedAt).toBeLessThanOrEqual(localClosed + 5);
      expect(Number.isInteger(connecting!.closedAt)).toBe(true); // whole ms, as the rows store them
      expect(closed.counters(words('127.0.0.1'), PORT, words('127.0.0.1'), local, false, 'after-collect')).toBeUndefined();
      // the one from the other machine: its accepted end here, with what it received
      expect(closed.counters(words('10.233.0.1'), PORT, words('10.233.0.2'), remote, false, 'collected')).toMatchObject({ rx: 7, tx: 0 });
      expect(closed.counters(words('10.233.0.2'), remote, words('10.233.0.1'), PORT, true, 'collected')).toMatchObject({ rx: 0, tx: 7 });
      expect(fresh).toHaveLength(3);
    } finally {
      server.kill();
    }
  }, 30_000);
});
