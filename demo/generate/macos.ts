// The "default" scenario: three minutes of a Mac in everyday use, as a NEFilterDataProvider would
// have reported it, with what the secure lookup (SecCodeCopyGuestWithAttributes) returned for each
// audit token — including the failures the seed threads are about.
import { createHash } from 'node:crypto';
import type { Attribution, ParentProcess } from '../../src/attribution/types.js';
import { encodeAuditToken } from '../../src/protocol/tokens.js';
import { ScenarioBuilder, seededRandom, type Proc } from './builder.js';

const USER = { uid: 501, user: 'anna' };
const LAUNCHD: ParentProcess = { pid: 1, name: 'launchd', path: '/sbin/launchd' };
const APPLE = { kind: 'apple', label: 'Apple (platform binary)' } as const;

function token(pid: number, pidversion: number, uid = USER.uid): string {
  const gid = uid === 0 ? 0 : 20;
  return encodeAuditToken({ auid: uid === 0 ? 0xffffffff : 501, euid: uid, egid: gid, ruid: uid, rgid: gid, pid, asid: 100_017, pidversion }).toString('base64');
}

function fakeSha(text: string): string {
  return createHash('sha256').update(`flowtop-demo:${text}`).digest('hex');
}

function developerId(identifier: string, team: string): string {
  return `identifier "${identifier}" and anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and certificate leaf[subject.OU] = ${team}`;
}

export function macosScenario(): string {
  const random = seededRandom(0x5eed_0001);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const lengthMs = 180_000;
  const b = new ScenarioBuilder(
    {
      name: 'default',
      description:
        'A Mac in everyday use for three minutes: Safari and Chrome through their networking helpers, Mail, Slack, Spotify, curl and Homebrew tools, ' +
        'system daemons in /usr/libexec whose secure lookup fails with EPERM (100001), a git helper that exits before its lookup (ESRCH 100003), ' +
        'an unsigned tool waiting for a verdict, a PID reused by another program, and an npm install burst.',
      host: 'annas-macbook-pro.local',
      lengthMs,
      defaultAction: 'allow',
      timeoutMs: 20_000,
      attributionNote: 'audit token → SecCodeCopyGuestWithAttributes (recorded)',
    },
    '192.168.1.42',
    '2a02:8109:b6c0:4f00:1c4e:7a2b:93d1:5e08',
    random,
  );

  const define = (_key: string, pid: number, pidversion: number, attribution: Omit<Attribution, 'pid'>, app?: Proc): Proc => {
    const uid = attribution.uid ?? USER.uid;
    const proc: Proc = { token: token(pid, pidversion, uid), pid, uid, ...(app ? { app } : {}) };
    const { trust, ...rest } = attribution;
    b.attribution(proc.token, { trust, pid, ...rest });
    return proc;
  };
  const secureApp = (name: string, path: string, identity: string, signer: Attribution['signer'], parents: ParentProcess[] = [LAUNCHD], extra: Partial<Attribution> = {}): Omit<Attribution, 'pid'> => ({
    trust: 'secure', uid: USER.uid, user: USER.user, name, path, identity, ...(signer ? { signer } : {}), parents, ...extra,
  });
  const epermDaemon = (name: string, uid: number, user: string): Omit<Attribution, 'pid'> => ({
    trust: 'insecure', uid, user, name, path: `/usr/libexec/${name}`,
    reason: {
      call: 'SecCodeCopyGuestWithAttributes', errno: 'EPERM', code: 100_001,
      message: 'the secure lookup was refused for this system daemon (kPOSIXErrorEPERM); name and path come from audit_token_to_pid + proc_pidpath, which a PID reuse could fool',
    },
    parents: [LAUNCHD],
  });

  // --- processes ---------------------------------------------------------------------------------
  const safari = define('safari', 612, 4, secureApp('Safari', '/Applications/Safari.app/Contents/MacOS/Safari', 'identifier "com.apple.Safari" and anchor apple', APPLE));
  const webkit = define('webkit', 640, 4, secureApp(
    'com.apple.WebKit.Networking',
    '/System/Volumes/Preboot/Cryptexes/App/System/Library/Frameworks/WebKit.framework/Versions/A/XPCServices/com.apple.WebKit.Networking.xpc/Contents/MacOS/com.apple.WebKit.Networking',
    'identifier "com.apple.WebKit.Networking" and anchor apple', APPLE,
  ), safari);
  const chromeTeam = 'EQHXZ8M8AV';
  const chromeSigner = { kind: 'developer-id', label: `Developer ID Application: Google LLC (${chromeTeam})`, teamId: chromeTeam } as const;
  const chrome = define('chrome', 2210, 11, secureApp('Google Chrome', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome', developerId('com.google.Chrome', chromeTeam), chromeSigner));
  const chromeNet = define('chrome-net', 2236, 11, secureApp(
    'Google Chrome Helper',
    '/Applications/Google Chrome.app/Contents/Frameworks/Google Chrome Framework.framework/Versions/131.0.6778.86/Helpers/Google Chrome Helper.app/Contents/MacOS/Google Chrome Helper',
    developerId('com.google.Chrome.helper', chromeTeam), chromeSigner,
    [{ pid: 2210, name: 'Google Chrome', path: '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome' }, LAUNCHD],
    { cmdline: ['Google Chrome Helper', '--type=utility', '--utility-sub-type=network.mojom.NetworkService', '--lang=en-GB', '--service-sandbox-type=network'] },
  ), chrome);
  const mail = define('mail', 701, 4, secureApp('Mail', '/System/Applications/Mail.app/Contents/MacOS/Mail', 'identifier "com.apple.mail" and anchor apple', APPLE));
  const slack = define('slack', 1877, 6, secureApp('Slack', '/Applications/Slack.app/Contents/MacOS/Slack', developerId('com.tinyspeck.slackmacgap', 'BQR82RBBHL'),
    { kind: 'developer-id', label: 'Developer ID Application: Slack Technologies, Inc. (BQR82RBBHL)', teamId: 'BQR82RBBHL' }));
  const spotify = define('spotify', 1920, 6, secureApp('Spotify', '/Applications/Spotify.app/Contents/MacOS/Spotify', developerId('com.spotify.client', '2FNC3A47ZF'),
    { kind: 'developer-id', label: 'Developer ID Application: Spotify (2FNC3A47ZF)', teamId: '2FNC3A47ZF' }));
  const mdns = define('mdns', 281, 2, { trust: 'secure', uid: 65, user: '_mdnsresponder', name: 'mDNSResponder', path: '/usr/sbin/mDNSResponder', identity: 'identifier "com.apple.mDNSResponder" and anchor apple', signer: APPLE, parents: [LAUNCHD] });
  const trustd = define('trustd', 391, 2, epermDaemon('trustd', 0, 'root'));
  const nsurlsessiond = define('nsurlsessiond', 455, 3, epermDaemon('nsurlsessiond', USER.uid, USER.user));
  const rapportd = define('rapportd', 512, 3, epermDaemon('rapportd', USER.uid, USER.user));
  const timed = define('timed', 237, 2, epermDaemon('timed', 266, '_timed'));
  const mobileassetd = define('mobileassetd', 398, 2, epermDaemon('mobileassetd', 0, 'root'));
  // The thread's observation: the simulator runtime's copy of the same daemon passes the secure lookup.
  const simMobileassetd = define('sim-mobileassetd', 15_502, 1, secureApp(
    'mobileassetd',
    '/Library/Developer/CoreSimulator/Volumes/iOS_21A328/Library/Developer/CoreSimulator/Profiles/Runtimes/iOS 17.0.simruntime/Contents/Resources/RuntimeRoot/usr/libexec/mobileassetd',
    'identifier "com.apple.mobileassetd" and anchor apple', APPLE,
    [{ pid: 15_420, name: 'launchd_sim', path: '/Library/Developer/CoreSimulator/Volumes/iOS_21A328/Library/Developer/CoreSimulator/Profiles/Runtimes/iOS 17.0.simruntime/Contents/Resources/RuntimeRoot/sbin/launchd_sim' }, LAUNCHD],
  ));
  const terminal: ParentProcess[] = [
    { pid: 7290, name: 'zsh', path: '/bin/zsh' },
    { pid: 7289, name: 'login', path: '/usr/bin/login' },
    { pid: 1502, name: 'Terminal', path: '/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal' },
    LAUNCHD,
  ];
  const curlIdentity = 'identifier "com.apple.curl" and anchor apple';
  const curl1 = define('curl-1', 7311, 1, secureApp('curl', '/usr/bin/curl', curlIdentity, APPLE, terminal,
    { cmdline: ['curl', '-fsSL', 'https://raw.githubusercontent.com/Homebrew/install/HEAD/install.sh'] }));
  const curl2 = define('curl-2', 7402, 1, secureApp('curl', '/usr/bin/curl', curlIdentity, APPLE, terminal,
    { cmdline: ['curl', '-s', 'https://api.github.com/repos/nodejs/node/releases/latest'] }));
  const adHoc = (name: string) => ({ kind: 'ad-hoc', label: `ad hoc (linker-signed ${name}, no signer identity)` } as const);
  const wget = define('wget', 8120, 1, secureApp('wget', '/opt/homebrew/Cellar/wget/1.25.0/bin/wget', `cdhash H"${fakeSha('wget').slice(0, 40)}"`, adHoc('wget'), terminal,
    { cmdline: ['wget', 'https://ftp.gnu.org/gnu/emacs/emacs-29.4.tar.xz'] }));
  const uploader = define('uploader', 8502, 1, {
    trust: 'secure', uid: USER.uid, user: USER.user, name: 'dropzone-sync', path: '/Users/anna/Downloads/DropzoneSync/dropzone-sync',
    identity: `sha256:${fakeSha('dropzone-sync')}`, sha256: fakeSha('dropzone-sync'),
    signer: { kind: 'unsigned', label: 'unsigned (no code signature)' },
    cmdline: ['/Users/anna/Downloads/DropzoneSync/dropzone-sync', '--daemon'], parents: [LAUNCHD],
  });
  // Exits before the filter's lookup runs: only the PID inside the token is known.
  const gitHelper = define('git-remote-https', 8841, 1, {
    trust: 'gone', uid: USER.uid,
    reason: { call: 'SecCodeCopyGuestWithAttributes', errno: 'ESRCH', code: 100_003, message: 'the process exited before it could be identified; its identity is unknown' },
  });
  // PID 9012 twice: ssh, then after it exits a Python interpreter. Same PID, different pidversion,
  // so different tokens and different identities.
  const ssh = define('ssh', 9012, 1, secureApp('ssh', '/usr/bin/ssh', 'identifier "com.apple.ssh" and anchor apple', APPLE, terminal,
    { cmdline: ['ssh', '-T', 'git@github.com'] }));
  const python = define('python', 9012, 2, secureApp('Python',
    '/opt/homebrew/Cellar/python@3.12/3.12.7_1/Frameworks/Python.framework/Versions/3.12/Resources/Python.app/Contents/MacOS/Python',
    `cdhash H"${fakeSha('python3.12').slice(0, 40)}"`, adHoc('Python'), terminal, { cmdline: ['python3', '-m', 'pip', 'install', 'requests'] }));
  const node = define('node', 8650, 1, secureApp('node', '/opt/homebrew/Cellar/node/23.3.0/bin/node', `cdhash H"${fakeSha('node').slice(0, 40)}"`, adHoc('node'), terminal,
    { cmdline: ['node', '/opt/homebrew/bin/npm', 'install'] }));

  // --- long-lived background traffic -------------------------------------------------------------
  b.connection({ at: 0, id: 'mail-imap', proc: mail, remote: { address: '142.250.27.109', port: 993 }, host: 'imap.gmail.com', rxRate: 900, txRate: 120, tickMs: 2000 });
  b.connection({ at: 150, id: 'slack-wss', proc: slack, remote: { address: '3.120.208.114', port: 443 }, host: 'wss-primary.slack.com', rxRate: 1_400, txRate: 300 });
  b.connection({ at: 400, id: 'spotify-audio', proc: spotify, remote: { address: '23.50.52.51', port: 443 }, host: 'audio-ak-spotify-com.akamaized.net', rxRate: 40_000, txRate: 900, tickMs: 1000 });
  b.connection({ at: 420, id: 'spotify-api', proc: spotify, remote: { address: '35.186.224.25', port: 443 }, host: 'spclient.wg.spotify.com', rxRate: 2_000, txRate: 800, tickMs: 3000 });
  b.connection({ at: 900, id: 'chrome-video', proc: chromeNet, protocol: 'udp', remote: { address: '173.194.182.135', port: 443 }, host: 'rr2---sn-4g5e6nsz.googlevideo.com', rxRate: 650_000, txRate: 14_000 });
  b.connection({ at: 950, id: 'chrome-yt', proc: chromeNet, remote: { address: '2a00:1450:4001:830::200e', port: 443 }, host: 'www.youtube.com', rxRate: 6_000, txRate: 1_500, tickMs: 2000 });
  b.connection({ at: 2_000, id: 'rapportd-in', proc: rapportd, direction: 'inbound', remote: { address: '192.168.1.23', port: 52_318 }, local: { address: '192.168.1.42', port: 49_160 }, rxRate: 300, txRate: 250, tickMs: 4000 });
  b.connection({ at: 20_000, id: 'nsurlsessiond-mesu', proc: nsurlsessiond, remote: { address: '17.253.15.201', port: 443 }, host: 'mesu.apple.com', durationMs: 4_000, rxRate: 60_000, txRate: 2_000 });
  b.connection({ at: 24_500, id: 'nsurlsessiond-swcdn', proc: nsurlsessiond, remote: { address: '2a02:26f0:e3::17:5f0a', port: 443 }, host: 'swcdn.apple.com', durationMs: 70_000, rxRate: 2_400_000, txRate: 20_000 });

  // --- periodic system chatter -------------------------------------------------------------------
  const lookups = ['www.apple.com', 'news.ycombinator.com', 'api.github.com', 'en.wikipedia.org', 'fonts.gstatic.com', 'edgeapi.slack.com', 'ocsp.apple.com', 'gateway.icloud.com'];
  let dns = 0;
  for (let t = 600; t < lengthMs - 1000; t += 1_500 + Math.floor(random() * 2_500)) {
    const server = dns % 3 === 2 ? { address: '2a02:8109:b6c0:4f00::1', port: 53 } : { address: '192.168.1.1', port: 53 };
    b.connection({ at: t, id: `dns-${++dns}`, proc: mdns, protocol: 'udp', remote: server, durationMs: 20 + Math.floor(random() * 60), rxRate: 2_400, txRate: 900, tickMs: 10, endReason: `answered ${pick(lookups)}` });
  }
  for (let t = 5_000, n = 1; t < lengthMs; t += 60_000, n++) {
    b.connection({ at: t, id: `ntp-${n}`, proc: timed, protocol: 'udp', remote: { address: '17.253.52.125', port: 123 }, host: 'time.apple.com', durationMs: 40, rxRate: 1_200, txRate: 1_200, tickMs: 20 });
  }

  // --- browsing: Safari through com.apple.WebKit.Networking, Chrome through its network service --
  const sites: Array<[string, string, number]> = [
    ['www.apple.com', '17.253.144.10', 443], ['news.ycombinator.com', '209.216.230.207', 443], ['en.wikipedia.org', '2a02:ec80:300:ed1a::1', 443],
    ['upload.wikimedia.org', '2a02:ec80:300:ed1a::2:b', 443], ['github.com', '140.82.121.3', 443], ['avatars.githubusercontent.com', '185.199.110.133', 443],
    ['fonts.gstatic.com', '2a00:1450:4001:82a::2003', 443], ['www.theguardian.com', '151.101.65.111', 443], ['i.guim.co.uk', '151.101.1.111', 443],
    ['developer.apple.com', '17.253.83.152', 443], ['docs.swift.org', '17.253.83.142', 443],
  ];
  let page = 0;
  const browse = (at: number, proc: Proc, prefix: string, count: number): void => {
    page++;
    for (let i = 0; i < count; i++) {
      const [host, address, port] = pick(sites);
      b.connection({
        at: at + i * 60 + Math.floor(random() * 400), id: `${prefix}-${page}-${i + 1}`, proc, remote: { address, port }, host,
        durationMs: 1_500 + Math.floor(random() * 25_000), rxRate: 20_000 + Math.floor(random() * 180_000), txRate: 1_000 + Math.floor(random() * 6_000), tickMs: 500,
      });
    }
    // Each new TLS chain: trustd checks revocation; it is one of the daemons the secure lookup refuses.
    b.connection({ at: at + 120, id: `ocsp-${page}`, proc: trustd, remote: { address: '17.253.37.208', port: 80 }, host: 'ocsp.apple.com', durationMs: 180, rxRate: 9_000, txRate: 2_000, tickMs: 60 });
  };
  for (const at of [3_000, 33_000, 64_000, 97_000, 128_000, 158_000]) browse(at, webkit, 'safari', 6 + Math.floor(random() * 6));
  for (const at of [14_000, 81_000, 141_000]) browse(at, chromeNet, 'chrome', 4 + Math.floor(random() * 4));
  b.connection({ at: 120_000, id: 'mail-smtp', proc: mail, remote: { address: '142.250.102.108', port: 587 }, host: 'smtp.gmail.com', durationMs: 2_600, rxRate: 4_000, txRate: 180_000, tickMs: 500 });

  // --- terminal work: curl, wget, git, ssh → python on the same PID ------------------------------
  b.note(6_000, 'curl asks for a verdict; a remember-always rule decides the second curl at 110 s on its own');
  b.connection({ at: 6_000, id: 'curl-install', proc: curl1, remote: { address: '185.199.108.133', port: 443 }, host: 'raw.githubusercontent.com', durationMs: 24_000, rxRate: 30_000, txRate: 1_500, pending: { deadlineMs: 15_000 } });
  b.connection({ at: 30_000, id: 'ssh-github', proc: ssh, remote: { address: '140.82.121.4', port: 22 }, host: 'github.com', durationMs: 12_000, rxRate: 2_500, txRate: 1_800 });
  b.note(44_000, 'git-remote-https exits before the filter looks it up: ESRCH (100003) → gone');
  b.connection({ at: 44_000, id: 'git-fetch', proc: gitHelper, remote: { address: '140.82.121.3', port: 443 }, host: 'github.com', durationMs: 900, rxRate: 80_000, txRate: 6_000, tickMs: 300 });
  b.connection({ at: 55_000, id: 'wget-emacs', proc: wget, remote: { address: '209.51.188.20', port: 443 }, host: 'ftp.gnu.org', durationMs: 45_000, rxRate: 1_500_000, txRate: 8_000, pending: { deadlineMs: 12_000 } });
  b.note(61_000, 'PID 9012 again, now a different program (new pidversion, new token)');
  b.connection({ at: 61_000, id: 'pip-pypi', proc: python, remote: { address: '151.101.0.223', port: 443 }, host: 'pypi.org', durationMs: 3_000, rxRate: 90_000, txRate: 3_000, tickMs: 500 });
  b.connection({ at: 62_500, id: 'pip-files', proc: python, remote: { address: '2a04:4e42::223', port: 443 }, host: 'files.pythonhosted.org', durationMs: 6_000, rxRate: 700_000, txRate: 6_000, tickMs: 500 });
  b.connection({ at: 110_000, id: 'curl-api', proc: curl2, remote: { address: '140.82.121.6', port: 443 }, host: 'api.github.com', durationMs: 16_400, rxRate: 40_000, txRate: 2_000, tickMs: 300, pending: { deadlineMs: 15_000 } });

  // --- an npm install: a burst of short flows ----------------------------------------------------
  b.note(70_000, 'npm install: a burst of short flows');
  const registry = ['104.16.27.34', '104.16.30.34', '104.16.2.35', '104.16.24.34', '104.16.1.35'];
  for (let i = 0; i < 160; i++) {
    b.connection({
      at: 70_000 + Math.floor(i * 22 + random() * 40), id: `npm-${i + 1}`, proc: node, remote: { address: pick(registry), port: 443 }, host: 'registry.npmjs.org',
      durationMs: 60 + Math.floor(random() * 1_100), rxRate: 200_000 + Math.floor(random() * 800_000), txRate: 4_000, tickMs: 50, endReason: 'closed',
    });
  }

  // --- an unsigned tool asks to reach an address with no name; its default is block ---------------
  b.note(9_000, 'an unsigned tool from ~/Downloads wants to reach a bare IP: its default is block');
  for (const [n, at] of [[1, 9_000], [2, 88_000], [3, 150_000]] as const) {
    b.connection({ at, id: `uploader-${n}`, proc: uploader, remote: { address: '45.77.139.12', port: 8443 }, durationMs: 28_000, rxRate: 800, txRate: 60_000, pending: { deadlineMs: 20_000, default: 'block' } });
  }

  // --- the daemons of the thread: EPERM for /usr/libexec, success for the simulator's copy --------
  b.connection({ at: 100_000, id: 'mobileassetd', proc: mobileassetd, remote: { address: '17.253.15.201', port: 443 }, host: 'mesu.apple.com', durationMs: 5_000, rxRate: 50_000, txRate: 2_000 });
  b.connection({ at: 104_000, id: 'sim-mobileassetd', proc: simMobileassetd, remote: { address: '17.253.15.201', port: 443 }, host: 'mesu.apple.com', durationMs: 4_000, rxRate: 40_000, txRate: 2_000 });
  b.connection({ at: 131_000, id: 'rapportd-out', proc: rapportd, remote: { address: '192.168.1.23', port: 49_300 }, durationMs: 9_000, rxRate: 500, txRate: 700 });
  b.connection({ at: 136_000, id: 'unowned-mdns', proc: mdns, protocol: 'udp', remote: { address: '224.0.0.251', port: 5353 }, local: { address: '192.168.1.42', port: 5353 }, durationMs: 300, ownerError: 'no process owns this socket any more: it closed before the filter saw the flow' });
  return b.toNdjson();
}
