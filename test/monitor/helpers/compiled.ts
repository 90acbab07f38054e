// Runs the monitor in a separate process — as another user (setpriv) or inside a network namespace
// (ip netns exec) — from the real sources: they are compiled once per test file into a temporary
// directory readable by every user, next to a small driver script and a copy of the production
// dependencies (a link to the checkout's would fail as nobody when the checkout is private).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { copyProductionDependencies } from '../../cli/install.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

// Driver: starts a monitor; optionally first asks a DNS server for a name (a real dgram exchange)
// and feeds the answer bytes to the parser and the host-name map; optionally connects somewhere
// itself. Prints every protocol message as one JSON line.
const DRIVER = `
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { createPassiveMonitor } from './src/monitor/index.js';
import { HostNameMap, parseDnsMessage } from './src/hostnames/index.js';
import { encodeName, header, question } from './test/hostnames/helpers/dns-wire.js';

const config = JSON.parse(process.argv[2] ?? '{}');
const print = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
const names = new HostNameMap();
if (config.dns) {
  const socket = createSocket('udp4');
  const query = Buffer.concat([header(0x4242, 0x0100, 1, 0), question(config.dns.name, 1)]);
  const answer = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no DNS answer')), 5000);
    socket.on('message', (bytes) => { clearTimeout(timer); resolve(bytes); });
    socket.send(query, config.dns.port, config.dns.server);
  });
  socket.close();
  const message = parseDnsMessage(answer);
  names.addResponse(message);
  print({ type: 'dns-learnt', answers: message?.answers ?? [] });
}
const monitor = createPassiveMonitor({ intervalMs: config.intervalMs ?? 100, hostNames: names });
monitor.events$.subscribe((e) => print(e.message));
if (config.connect) {
  const s = connect(config.connect.port, config.connect.host, () => print({ type: 'connected', port: s.localPort }));
  s.on('error', () => {});
}
process.stdin.resume();
process.stdin.on('end', () => { monitor.close(); process.exit(0); });
`;

export interface CompiledDriver {
  dir: string;
  remove(): void;
}

/** Compiles the sources the driver needs (no type check: the test run type-checks separately). */
export function compileDriver(): CompiledDriver {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-monitor-'));
  const tsc = spawnSync(process.execPath, [
    join(root, 'node_modules/typescript/bin/tsc'), '--ignoreConfig', '--outDir', dir, '--rootDir', root,
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck',
    '--types', 'node', '--noCheck',
    join(root, 'src/monitor/index.ts'), join(root, 'src/hostnames/index.ts'), join(root, 'test/hostnames/helpers/dns-wire.ts'),
  ], { encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`compiling the monitor failed:\n${tsc.stdout}${tsc.stderr}`);
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  writeFileSync(join(dir, 'driver.mjs'), DRIVER);
  copyProductionDependencies(dir);
  chmodSync(dir, 0o755);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface DriverProcess {
  process: ChildProcess;
  pid: number;
  /** Every JSON line printed so far. */
  lines: Array<Record<string, unknown>>;
  stop(): void;
}

/** Starts the driver, under `prefix` (e.g. setpriv … or ip netns exec …). */
export function startDriver(compiled: CompiledDriver, config: object, prefix: string[] = []): DriverProcess {
  const argv = [...prefix, process.execPath, join(compiled.dir, 'driver.mjs'), JSON.stringify(config)];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], cwd: compiled.dir });
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ type: 'unparsed', line });
    }
  });
  return {
    process: child,
    pid: child.pid!,
    lines,
    stop: () => {
      child.stdin?.end();
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    },
  };
}
