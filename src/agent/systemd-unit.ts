// The systemd unit `flowtop agent install` writes: the agent started at boot, restarted when it fails,
// with only the capabilities it uses and the file system read-only but for what it writes. Pure: the
// text from the paths and flags; installing it is commands/agent-install.ts.
import { dirname } from 'node:path';

export const UNIT_NAME = 'flowtop-agent.service';
/** The first line of every unit flowtop writes: uninstall removes only a file that starts with it. */
export const UNIT_MARKER = '# Written by `flowtop agent install`';

/** What each capability is for (the unit lists them, and nothing else, in its bounding set). */
export const AGENT_CAPABILITIES: ReadonlyArray<[string, string]> = [
  ['CAP_NET_ADMIN', 'firewall rules, NFQUEUE, sock_diag socket destroy, conntrack, attaching BPF to a cgroup'],
  ['CAP_NET_RAW', 'iptables (legacy backend) raw sockets'],
  ['CAP_BPF', 'loading the socket recorder and its maps'],
  ['CAP_PERFMON', 'the recorder reading the process instance from task_struct'],
  ['CAP_SYS_ADMIN', 'bpf(BPF_PROG_GET_FD_BY_ID) to find a dead agent\'s programs; mounting cgroup2 where none is visible'],
  ['CAP_SYS_PTRACE', '/proc/PID/exe and /proc/PID/fd of other users\' processes'],
  ['CAP_DAC_READ_SEARCH', 'reading any executable to hash it'],
  ['CAP_CHOWN', 'giving the socket to group flowtop'],
  ['CAP_KILL', 'pidfd liveness checks (signal 0) on other users\' processes'],
];

export interface UnitOptions {
  /** The node binary and the flowtop entry script, absolute. */
  node: string;
  entry: string;
  /** The agent's flags, as given to `install`. */
  agentArgs: string[];
  rulesPath: string;
  socketPath: string;
  /** The history file (absent with --no-history). */
  historyPath?: string;
  written: Date;
}

const under = (path: string, roots: string[]): boolean => roots.some((root) => path === root || path.startsWith(`${root}/`));
const HOMES = ['/home', '/root', '/run/user'];
const TEMPS = ['/tmp', '/var/tmp'];

/** One ExecStart word: quoted when it holds anything but plain characters; `%` and `$` escaped (systemd
 *  expands specifiers and variables there). */
export function execWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_./:=,@+-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** A path for a directive that takes a list of paths (ReadWritePaths=): one word, escaped. */
function pathWord(path: string): string {
  if (/\s|"|\\/.test(path)) throw new Error(`cannot name ${JSON.stringify(path)} in a systemd unit (white space or quotes): pick a simpler path`);
  return path.replace(/%/g, '%%');
}

export function renderUnit(o: UnitOptions): string {
  const exec = [o.node, o.entry, 'agent', ...o.agentArgs].map(execWord).join(' ');
  const socketDir = dirname(o.socketPath);
  const writable = [...new Set([dirname(o.rulesPath), ...(socketDir === '/run/flowtop' ? [] : [socketDir]), ...(o.historyPath ? [dirname(o.historyPath)] : [])])];
  // Home folders hidden unless something the agent runs or uses lives there (then read-only, with the
  // writable folders above still writable); a private /tmp unless its socket or rules are in /tmp.
  const homeVisible = [o.node, o.entry, o.rulesPath, o.socketPath, o.historyPath ?? ''].some((p) => under(p, HOMES));
  const privateTmp = ![o.rulesPath, o.socketPath, o.historyPath ?? ''].some((p) => under(p, TEMPS));
  return [
    `${UNIT_MARKER} on ${o.written.toISOString()}; \`flowtop agent uninstall\` removes it.`,
    '[Unit]',
    'Description=flowtop agent: holds each new connection until a rule or a client decides',
    // Up before the network is, so no connection is made unjudged at boot.
    'Wants=network-pre.target',
    'Before=network-pre.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    'Restart=on-failure',
    'RestartSec=1s',
    // SIGTERM lets the agent remove its rules, programs and socket; give it time to.
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30s',
    'User=root',
    `CapabilityBoundingSet=${AGENT_CAPABILITIES.map(([cap]) => cap).join(' ')}`,
    'NoNewPrivileges=yes',
    // /usr, /boot and /etc read-only; the rules file's folder (and a socket folder outside /run/flowtop)
    // writable. /run stays writable: iptables takes /run/xtables.lock there.
    'ProtectSystem=full',
    `ReadWritePaths=${writable.map((p) => `-${pathWord(p)}`).join(' ')}`,
    `ProtectHome=${homeVisible ? 'read-only' : 'yes'}`,
    'RuntimeDirectory=flowtop',
    'RuntimeDirectoryMode=0755',
    ...(privateTmp ? ['PrivateTmp=yes'] : ['# no PrivateTmp: the socket or rules file is in /tmp, which clients must share', 'PrivateTmp=no']),
    'PrivateDevices=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'UMask=0022',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
