// How every flowtop program reaches the fleet's NATS servers (docs/fleet.md, "Connecting"): the --nats*
// flags the agent, the client (`flowtop --nats`, `flowtop list --nats`) and `flowtop rules --nats` share,
// checked before anything connects. Each command layers its own flags on top (the agent's --host-name
// and --nats-max-age, the client's --replay). A plain (non-TLS) connection is allowed only to a loopback
// address unless the user insists (--nats-insecure): the link carries flows, verdicts, rules and
// credentials, and a plain link across a network could be read or rewritten.
import { readFileSync, statSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { UsageError } from '../errors.js';
import { DEFAULT_PREFIX, fleetNames } from './wire.js';

/** The flags as parseArgs hands them over (every value a string or boolean, absent when not given). */
export interface NatsFlagValues {
  /** Repeatable, and each may list several servers separated by commas. */
  nats?: string | string[];
  'nats-creds'?: string;
  'nats-nkey'?: string;
  'nats-user'?: string;
  'nats-password-file'?: string;
  'nats-ca'?: string;
  'nats-prefix'?: string;
  'nats-insecure'?: boolean;
}

/** parseArgs option declarations for the flags every NATS-speaking command takes. */
export const NATS_FLAG_OPTIONS = {
  nats: { type: 'string', multiple: true },
  'nats-creds': { type: 'string' },
  'nats-nkey': { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-password-file': { type: 'string' },
  'nats-ca': { type: 'string' },
  'nats-prefix': { type: 'string' },
  'nats-insecure': { type: 'boolean' },
} as const;

/** Everything needed to connect, as plain data (it is handed to a worker thread). */
export interface NatsLinkConfig {
  servers: string[];
  tls: boolean;
  /** PEM of the CA the server's certificate must chain to (--nats-ca); the system's CAs otherwise. */
  ca?: string;
  /** Contents of a .creds file (user JWT + nkey seed). */
  creds?: Uint8Array;
  /** An nkey seed (SU…). */
  nkeySeed?: Uint8Array;
  user?: string;
  password?: string;
  prefix: string;
  insecure: boolean;
}

export const NATS_FLAGS_HELP = `  --nats URL           a NATS server (nats://host:port or tls://host:port); repeat it (or separate
                       URLs with commas) for a cluster's nodes. Plain nats:// only to a loopback
                       address (127.0.0.0/8, ::1, localhost) unless --nats-insecure
  --nats-creds FILE    a NATS .creds file (user JWT and nkey seed)
  --nats-nkey FILE     a file holding an nkey seed (SU…)
  --nats-user NAME --nats-password-file FILE   user and password (the file's first line)
  --nats-ca FILE       CA certificate (PEM) the server's TLS certificate must chain to
  --nats-prefix P      subject and bucket prefix (default ${DEFAULT_PREFIX})
  --nats-insecure      allow a plain (non-TLS) connection to a non-loopback address
`;

/** Checks the NATS flags of `command` ('' for `flowtop` itself); undefined when --nats is absent (then
 *  no other --nats-* flag may be given). */
export function natsLinkConfig(command: string, v: NatsFlagValues): NatsLinkConfig | undefined {
  const fail = (message: string): never => {
    throw new UsageError(command ? `${command}: ${message}` : message, `run \`flowtop ${command ? `${command} ` : ''}--help\` for the usage; docs/fleet.md says how to connect`);
  };
  if (v.nats === undefined) {
    const stray = (Object.keys(NATS_FLAG_OPTIONS) as Array<keyof NatsFlagValues>).find((k) => k !== 'nats' && v[k] !== undefined);
    if (stray) fail(`--${stray} needs --nats URL`);
    return undefined;
  }
  const servers = (Array.isArray(v.nats) ? v.nats : [v.nats]).flatMap((n) => n.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
  if (servers.length === 0) fail('--nats needs a server URL, e.g. nats://127.0.0.1:4222 or tls://nats.example:4222');
  const parsed = servers.map((s) => parseServer(s, fail));
  const tls = parsed[0]!.tls;
  if (parsed.some((p) => p.tls !== tls)) fail('--nats mixes tls:// and plain URLs: use one kind for every server');
  if (!tls && !v['nats-insecure']) {
    const remote = parsed.find((p) => !isLoopback(p.host));
    if (remote) fail(`--nats ${remote.text} is a plain connection to a non-loopback address: use tls://, or --nats-insecure if this network is trusted`);
  }
  const auths = [v['nats-creds'] !== undefined, v['nats-nkey'] !== undefined, v['nats-user'] !== undefined || v['nats-password-file'] !== undefined].filter(Boolean).length;
  if (auths > 1) fail('pick one way to authenticate: --nats-creds, --nats-nkey, or --nats-user with --nats-password-file');
  const prefix = v['nats-prefix'] ?? DEFAULT_PREFIX;
  try {
    fleetNames(prefix);
  } catch (error) {
    fail(`--nats-prefix: ${(error as Error).message}`);
  }
  const config: NatsLinkConfig = { servers: parsed.map((p) => p.url), tls, prefix, insecure: v['nats-insecure'] ?? false };
  if (v['nats-ca'] !== undefined) {
    if (!tls) fail('--nats-ca is for tls:// servers');
    const ca = readText(v['nats-ca'], '--nats-ca', fail);
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) fail(`--nats-ca ${v['nats-ca']} holds no PEM certificate`);
    config.ca = ca;
  }
  if (v['nats-creds'] !== undefined) {
    const creds = readText(v['nats-creds'], '--nats-creds', fail);
    if (!/-----BEGIN NATS USER JWT-----/.test(creds) || !/-----BEGIN USER NKEY SEED-----/.test(creds)) {
      fail(`--nats-creds ${v['nats-creds']} is not a NATS .creds file (it needs a user JWT and a user nkey seed)`);
    }
    config.creds = new TextEncoder().encode(creds);
  }
  if (v['nats-nkey'] !== undefined) {
    const seed = readText(v['nats-nkey'], '--nats-nkey', fail).split('\n').map((l) => l.trim()).find((l) => /^SU[A-Z2-7]{50,}$/.test(l));
    if (!seed) fail(`--nats-nkey ${v['nats-nkey']} holds no user nkey seed (a line starting with SU)`);
    config.nkeySeed = new TextEncoder().encode(seed);
  }
  if (v['nats-user'] !== undefined || v['nats-password-file'] !== undefined) {
    if (v['nats-user'] === undefined) fail('--nats-password-file needs --nats-user');
    if (v['nats-password-file'] === undefined) fail('--nats-user needs --nats-password-file (a password is never taken on the command line: other users can read it there)');
    if (!/^[^\s]{1,128}$/.test(v['nats-user']!)) fail(`--nats-user "${v['nats-user']}": 1–128 characters, no spaces`);
    const password = readText(v['nats-password-file']!, '--nats-password-file', fail).split('\n')[0]!.replace(/\r$/, '');
    if (password.length === 0) fail(`--nats-password-file ${v['nats-password-file']} is empty`);
    config.user = v['nats-user'];
    config.password = password;
  }
  return config;
}

interface ParsedServer {
  text: string;
  url: string;
  host: string;
  tls: boolean;
}

function parseServer(text: string, fail: (m: string) => never): ParsedServer {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `nats://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return fail(`--nats "${text}" is not a server URL (e.g. nats://127.0.0.1:4222)`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme !== 'nats' && scheme !== 'tls') fail(`--nats "${text}": use nats:// or tls://, not ${scheme}://`);
  if (url.hostname === '') fail(`--nats "${text}" names no host`);
  if (url.username || url.password) fail(`--nats "${text}": put no user or password in the URL (use --nats-user and --nats-password-file)`);
  if (url.pathname !== '' && url.pathname !== '/') fail(`--nats "${text}": a server URL has no path`);
  const port = url.port === '' ? 4222 : Number(url.port);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { text, url: `${scheme}://${url.hostname}:${port}`, host, tls: scheme === 'tls' };
}

/** Whether a plain link to `host` stays on this machine: `localhost`, an IPv4 address in 127.0.0.0/8
 *  written as four decimal numbers, or ::1 (however spelt). Any other name could resolve anywhere:
 *  `127.0.0.300`, `127.evil.example` and `localhost.example` are names, not loopback addresses. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (isIPv6(h)) return canonicalIPv6(h) === '::1';
  return false;
}

/** The shortest spelling of an IPv6 address (0:0:0:0:0:0:0:1 → ::1), by the URL parser's rules. */
function canonicalIPv6(address: string): string | undefined {
  try {
    return new URL(`http://[${address}]/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}

function readText(path: string, flag: string, fail: (m: string) => never): string {
  try {
    // A FIFO or a device (/dev/zero) would block or never end: only a regular file is read.
    if (!statSync(path).isFile()) return fail(`${flag} ${path}: not a regular file`);
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    return fail(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : (error as Error).message}`);
  }
}

/** A duration for --nats-max-age: 90s, 30m, 12h, 7d (1 minute to 365 days). */
export function parseMaxAge(command: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  const unit = m ? { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'] : 0;
  const ms = m ? Math.round(Number(m[1]) * unit) : NaN;
  if (!Number.isFinite(ms) || ms < 60_000 || ms > 365 * 86_400_000) {
    throw new UsageError(`${command}: --nats-max-age must be a duration between 1m and 365d (e.g. 24h, 7d), got "${text}"`);
  }
  return ms;
}
