// The BPF record names the process instance that connected (start time, exec counter and pidfs inode read
// from task_struct through the kernel's BTF offsets): the token the agent makes from it must be the very
// token the /proc route makes for the same process, a record whose instance no longer holds the PID
// must be refused, and a kernel without BTF (task reads off) must still give the same token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SocketRecorder, type OwnerRecord } from '../../src/native/linux/bpf.js';
import { Btf, BtfError, loadKernelBtf } from '../../src/native/linux/btf.js';
import { SockDiag } from '../../src/native/linux/sock-diag.js';
import { TokenCache } from '../../src/agent/token-cache.js';
import { TestCgroup, buildAgent, lines, skipUnlessCapable, waitFor } from './helpers.js';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { LinuxResolver } from '../../src/native/linux/process.js';
import { execTag } from '../../src/native/linux/token.js';

const skip = skipUnlessCapable();
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** A python3 child in the cgroup that connects to `port` and holds the connection until stdin ends. */
function connectFrom(cg: TestCgroup, port: number): { child: ChildProcess; localPort: Promise<number> } {
  const child = spawn('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', ${port}))
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = lines(child);
  return { child, localPort: out.next((l) => /^\d+$/.test(l)).then(Number) };
}

function procStartTicks(pid: number): bigint {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return BigInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!);
}

describe.skipIf(skip)('connect records that name the process instance', () => {
  let cg: TestCgroup;
  let server: net.Server;
  let port: number;
  const diag = new SockDiag();

  beforeAll(async () => {
    cg = new TestCgroup();
    server = net.createServer(() => {}).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    server?.close();
    diag.close();
    cg?.delete();
  });

  async function recordOf(recorder: SocketRecorder): Promise<{ child: ChildProcess; record: OwnerRecord }> {
    const { child, localPort } = connectFrom(cg, port);
    const info = diag.lookup({ protocol: 'tcp', local: { address: Buffer.from([127, 0, 0, 1]), port: await localPort }, remote: { address: Buffer.from([127, 0, 0, 1]), port } });
    expect(info).toBeDefined();
    const record = recorder.lookupCookie(info!.cookie);
    expect(record?.tgid).toBe(child.pid);
    return { child, record: record! };
  }

  /** The "parent PID PORT" and "child PID PORT" lines of a client that connects, forks, and connects
   *  again from the child; with the connect records of both sockets. */
  async function parentAndChild(child: ChildProcess, recorder: SocketRecorder): Promise<{ parentPid: number; childPid: number; parentRecord: OwnerRecord; childRecord: OwnerRecord }> {
    const out = lines(child);
    const [, parentPid, parentPort] = (await out.next((l) => l.startsWith('parent'))).split(' ').map(Number);
    const [, childPid, childPort] = (await out.next((l) => l.startsWith('child'))).split(' ').map(Number);
    const recordFor = (localPort: number): OwnerRecord => {
      const info = diag.lookup({ protocol: 'tcp', local: { address: Buffer.from([127, 0, 0, 1]), port: localPort }, remote: { address: Buffer.from([127, 0, 0, 1]), port } });
      return recorder.lookupCookie(info!.cookie)!;
    };
    return { parentPid: parentPid!, childPid: childPid!, parentRecord: recordFor(parentPort!), childRecord: recordFor(childPort!) };
  }

  it('reads start time and pidfs inode from task_struct, and makes the token the /proc route makes', async () => {
    const recorder = SocketRecorder.attach(cg.path);
    try {
      expect(recorder.readsTask, recorder.instanceNote).toBe(true);
      const { child, record } = await recordOf(recorder);
      expect(record.startBootNs / 10_000_000n).toBe(procStartTicks(child.pid!));
      expect(record.pidfsInode).toBeGreaterThan(0n);
      const fromRecord = new TokenCache().getInstance(record);
      const fromProc = new TokenCache().get(child.pid!);
      expect(typeof fromRecord).toBe('object');
      expect(fromRecord).toMatchObject({ tokenText: fromProc!.tokenText });
      // another instance's inode under the same PID: refused, never that process's token
      expect(new TokenCache().getInstance({ ...record, pidfsInode: record.pidfsInode + 1n })).toBe('reused');
      child.stdin!.end();
      await new Promise((r) => child.once('exit', r));
      expect(new TokenCache().getInstance(record)).toBe('gone');
    } finally {
      recorder.close();
    }
  });

  it('a forked child running the same open executable gets its own exact token with no lookup by PID', async () => {
    const recorder = SocketRecorder.attach(cg.path);
    const child = spawn('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec python3 -c "
import os, socket, sys
a = socket.create_connection(('127.0.0.1', ${port}))
print('parent', os.getpid(), a.getsockname()[1], flush=True)
r, w = os.pipe()
if os.fork() == 0:
    b = socket.create_connection(('127.0.0.1', ${port}))
    print('child', os.getpid(), b.getsockname()[1], flush=True)
    os.read(r, 1)
    os._exit(0)
sys.stdin.read()
os.write(w, b'x')
os.wait()
"`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const { parentPid, childPid, parentRecord, childRecord } = await parentAndChild(child, recorder);
      expect([parentRecord.tgid, childRecord.tgid]).toEqual([parentPid, childPid]);
      // the same open executable, named by the kernel's struct file address and inode number
      expect(childRecord.exeFile).not.toBe(0n);
      expect(childRecord.exeFile).toBe(parentRecord.exeFile);
      expect(childRecord.exeIno).toBe(BigInt(statSync(`/proc/${childPid}/exe`).ino));
      const cache = new TokenCache();
      const parentToken = cache.getInstance(parentRecord);
      const childToken = cache.getInstance(childRecord);
      expect(parentToken).toMatchObject({ tokenText: new TokenCache().get(parentPid)!.tokenText });
      expect(childToken).toMatchObject({ pidfd: -1, tokenText: new TokenCache().get(childPid)!.tokenText });
    } finally {
      child.stdin!.end();
      recorder.close();
    }
  });

  it('the file key of a process running an identified executable comes from the agent\'s own descriptor of the file, follows the file, and lets go once it is deleted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-exe-'));
    const exe = join(dir, 'python3-copy');
    copyFileSync(realpathSync('/usr/bin/python3'), exe);
    chmodSync(exe, 0o755);
    const recorder = SocketRecorder.attach(cg.path);
    const child = spawn('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec ${exe} -c "
import os, socket, sys
a = socket.create_connection(('127.0.0.1', ${port}))
print('parent', os.getpid(), a.getsockname()[1], flush=True)
if os.fork() == 0:
    b = socket.create_connection(('127.0.0.1', ${port}))
    print('child', os.getpid(), b.getsockname()[1], flush=True)
    sys.stdin.read()
    os._exit(0)
sys.stdin.read()
os.wait()
"`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const cache = new TokenCache();
    const ourDescriptorsOf = (path: string): number => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(path);
      } catch {
        return false;
      }
    }).length;
    const keyByStat = (pid: number): string => {
      const st = statSync(`/proc/${pid}/exe`, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    };
    try {
      const { parentPid, childPid, parentRecord, childRecord } = await parentAndChild(child, recorder);
      expect(typeof cache.getInstance(parentRecord)).toBe('object');
      expect(ourDescriptorsOf(exe)).toBe(1);
      const keyOf = (): string | undefined => cache.fileKeyOf(childPid, childRecord.exeIno, childRecord.exeDev, childRecord.exeFile);
      expect(keyOf()).toBe(keyByStat(childPid));
      expect(keyOf()).toBe(new TokenCache().fileKeyOf(childPid, childRecord.exeIno, childRecord.exeDev));
      // the file changes (its times here): so does the key, as a stat through /proc/PID/exe would say
      const before = keyOf();
      utimesSync(exe, new Date(2001, 1, 1), new Date(2001, 1, 1));
      expect(keyOf()).not.toBe(before);
      expect(keyOf()).toBe(keyByStat(childPid));
      // deleted while running: the key still comes (through /proc), and the descriptor is closed so the
      // file's blocks are freed when its last process exits
      rmSync(exe);
      expect(keyOf()).toBe(keyByStat(childPid));
      expect(ourDescriptorsOf(exe)).toBe(0);
      expect(parentPid).toBe(parentRecord.tgid);
    } finally {
      child.stdin!.end();
      recorder.close();
      cache.clear();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads its programs, task_struct reads included, while signals keep arriving (a profiler sampling every 50 µs)', async () => {
    // The verifier gives up with EAGAIN whenever a signal is pending for the loading thread: without
    // holding signals back the agent fell back to /proc scans when started under a profiler.
    const dist = buildAgent();
    const profiles = mkdtempSync(join(tmpdir(), 'flowtop-prof-'));
    try {
      for (let run = 0; run < 3; run++) {
        const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-interval=50', `--cpu-prof-dir=${profiles}`, '-e', `import(${JSON.stringify(join(dist, 'native/linux/bpf.js'))}).then((m) => {
  const r = m.SocketRecorder.attach(${JSON.stringify(cg.path)});
  console.log(JSON.stringify({ readsTask: r.readsTask, note: r.instanceNote }));
  r.close();
}, (e) => console.log(JSON.stringify({ error: e.message.split('\\n')[0] })))`], { encoding: 'utf8' });
        expect(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}')).toEqual({ readsTask: true, note: 'process instance read from task_struct (BTF offsets)' });
      }
    } finally {
      rmSync(profiles, { recursive: true, force: true });
    }
  });

  it('a record whose fields disagree with /proc (wrong offsets) makes the cache confirm processes through /proc only', async () => {
    const recorder = SocketRecorder.attach(cg.path);
    try {
      const { child, record } = await recordOf(recorder);
      const said: string[] = [];
      const cache = new TokenCache(1024, (why) => said.push(why));
      // the pidfs inode agrees, the start time is one tick off: not a reused PID but bad reads
      const skewed = { ...record, startBootNs: record.startBootNs + 10_000_000n };
      expect(cache.getInstance(skewed)).toMatchObject({ tokenText: new TokenCache().get(child.pid!)!.tokenText });
      expect(cache.trustRecords).toBe(false);
      expect(said).toHaveLength(1);
      expect(said[0]).toMatch(/disagree with \/proc/);
      // a sound record for the same cache still goes through /proc from now on, with the same token
      expect(cache.getInstance(record)).toMatchObject({ tokenText: new TokenCache().get(child.pid!)!.tokenText });
      // both fields differing is a reused PID, not bad reads: refused, and trust kept
      const fresh = new TokenCache();
      expect(fresh.getInstance({ ...record, startBootNs: record.startBootNs + 10_000_000n, pidfsInode: record.pidfsInode + 1n })).toBe('reused');
      expect(fresh.trustRecords).toBe(true);
      // another inode with the same start time: a PID reused within one clock tick, once or twice; the
      // third time before any record was confirmed, the inode read is what is wrong
      const wrongInode = { ...record, pidfsInode: record.pidfsInode + 1n };
      const suspicious = new TokenCache();
      expect(suspicious.getInstance(wrongInode)).toBe('reused');
      expect(suspicious.getInstance(wrongInode)).toBe('reused');
      expect(suspicious.getInstance(wrongInode)).toMatchObject({ tokenText: new TokenCache().get(child.pid!)!.tokenText });
      expect(suspicious.trustRecords).toBe(false);
      child.stdin!.end();
    } finally {
      recorder.close();
    }
  });

  it('without task reads (a kernel with no BTF) the record names the instance through /proc, but not its program: never secure', async () => {
    const recorder = SocketRecorder.attach(cg.path, { readTask: false });
    try {
      expect(recorder.readsTask).toBe(false);
      expect(recorder.instanceNote).toMatch(/\/proc/);
      const { child, record } = await recordOf(recorder);
      expect(record).toMatchObject({ startBootNs: 0n, execId: 0n, pidfsInode: 0n, exeFile: 0n, exeIno: 0n, exeDev: 0n });
      const cached = new TokenCache().getInstance(record);
      if (typeof cached === 'string') throw new Error(cached);
      const viaProc = decodeLinuxToken(new TokenCache().get(child.pid!)!.token)!;
      // the same process instance; the exec tag 0 says the program that connected is not known
      expect(decodeLinuxToken(cached.token)).toEqual({ ...viaProc, execTag: 0 });
      expect(new TokenCache().fileKeyOf(child.pid!, record.exeIno, record.exeDev)).toBeUndefined();
      const seen = new LinuxResolver().resolveOne(cached.token);
      expect(seen.trust).toBe('insecure');
      expect(seen.reason?.message).toMatch(/does not say which program/);
      child.stdin!.end();
    } finally {
      recorder.close();
    }
  });

  it('a process that execs another program after connecting keeps the identity of the one that connected', async () => {
    // python connects, then (told to) execs sleep with the socket still open; the record is read only
    // after the exec, as a slow queue thread would
    const recorder = SocketRecorder.attach(cg.path);
    const child = spawn('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec ${PYTHON} -c "
import os, socket, sys
s = socket.create_connection(('127.0.0.1', ${port}))
os.set_inheritable(s.fileno(), True)
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
os.execv('/bin/sleep', ['sleep', '30'])
"`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const localPort = Number(await lines(child).next((l) => /^\d+$/.test(l)));
      const pythonExe = statSync(`/proc/${child.pid}/exe`, { bigint: true });
      child.stdin!.write('exec\n');
      await waitFor('the exec', () => readlinkSync(`/proc/${child.pid}/exe`).endsWith('sleep'));
      const info = diag.lookup({ protocol: 'tcp', local: { address: Buffer.from([127, 0, 0, 1]), port: localPort }, remote: { address: Buffer.from([127, 0, 0, 1]), port } });
      const record = recorder.lookupCookie(info!.cookie)!;
      expect(record).toMatchObject({ tgid: child.pid, exeIno: pythonExe.ino, exeDev: pythonExe.dev });
      const cache = new TokenCache();
      const made = cache.getInstance(record);
      if (typeof made === 'string') throw new Error(made);
      expect(decodeLinuxToken(made.token)!.execTag).toBe(execTag(pythonExe.dev, pythonExe.ino));
      // asked again (the next packet): the same answer from the cache
      expect((cache.getInstance(record) as { tokenText: string }).tokenText).toBe(made.tokenText);
      // no file key for identity rules: the file the record names is no longer what the process runs
      expect(cache.fileKeyOf(child.pid!, record.exeIno, record.exeDev, record.exeFile)).toBeUndefined();
      const seen = new LinuxResolver().resolveOne(made.token);
      expect(seen.trust).toBe('gone');
      expect(seen.reason?.message).toMatch(/started another program/);
      cache.clear();
    } finally {
      child.kill('SIGKILL');
      recorder.close();
    }
  });
});

describe('BTF reader', () => {
  it('refuses a blob that is not BTF, with a reason', () => {
    expect(() => new Btf(Buffer.from('not btf at all, just text'))).toThrow(BtfError);
    expect(() => new Btf(Buffer.alloc(10))).toThrow(/bad magic/);
  });

  it('refuses a truncated blob instead of reading past its end', () => {
    const blob = Buffer.alloc(24);
    blob.writeUInt16LE(0xeb9f, 0);
    blob.writeUInt32LE(24, 4);
    blob.writeUInt32LE(0, 8);
    blob.writeUInt32LE(1000, 12); // a type section far longer than the blob
    expect(() => new Btf(blob)).toThrow(/past the end/);
  });

  it.skipIf(process.platform !== 'linux')('finds task_struct fields in the running kernel, and nothing for names it lacks', () => {
    const btf = loadKernelBtf();
    if (!btf) {
      if (process.env['CI'] === 'true') throw new Error('the kernel has no /sys/kernel/btf/vmlinux');
      return;
    }
    expect(btf.field('task_struct', 'group_leader')).toMatchObject({ kind: 'ptr', size: 8 });
    expect(btf.field('task_struct', 'start_boottime')).toMatchObject({ size: 8 });
    expect(btf.field('task_struct', 'no_such_field')).toBeUndefined();
    expect(btf.field('no_such_struct', 'x')).toBeUndefined();
  });
});
