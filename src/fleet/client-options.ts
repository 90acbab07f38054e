// The client's NATS flags (`--nats URL [--nats-creds FILE | --nats-user U --nats-password-file F]
// [--nats-prefix P] [--nats-insecure] [--replay DUR]`), checked before anything connects: each bad
// value is refused with what to write instead. A plain (non-TLS) connection is allowed only to a
// loopback address unless the person insists with --nats-insecure: credentials and verdicts would
// otherwise cross the network readable by anyone on the path.
import { readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { UsageError, UserError } from '../errors.js';
import { DEFAULT_PREFIX, USER_NAME_PATTERN, fleetNames } from './wire.js';

export interface FleetClientOptions {
  /** Server URLs as given (nats://, tls://; a bare host:port is nats://). */
  servers: string[];
  /** Whether the connection must use TLS (a tls:// URL). */
  tls: boolean;
  auth: { kind: 'none' } | { kind: 'creds'; file: string; creds: Uint8Array } | { kind: 'password'; user: string; password: string };
  prefix: string;
  /** The user name put in request subjects (the NATS user; the agent records it as who decided). */
  user: string;
  /** How far back the events stream is read at start. */
  replayMs: number;
}

export interface FleetFlags {
  nats?: string[];
  'nats-creds'?: string;
  'nats-user'?: string;
  'nats-password-file'?: string;
  'nats-prefix'?: string;
  'nats-insecure'?: boolean;
  replay?: string;
}

/** parseArgs options for the flags above (shared by `flowtop` and `flowtop list`). */
export const FLEET_FLAG_OPTIONS = {
  nats: { type: 'string', multiple: true },
  'nats-creds': { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-password-file': { type: 'string' },
  'nats-prefix': { type: 'string' },
  'nats-insecure': { type: 'boolean' },
  replay: { type: 'string' },
} as const;

export const FLEET_USAGE = `  --nats URL       watch and steer a fleet of agents through a NATS server (repeatable: a cluster's
                   nodes). nats://host:port, or tls://host:port for TLS; plain nats:// only to a
                   loopback address unless --nats-insecure
  --nats-creds FILE  a NATS credentials file (JWT + nkey seed)
  --nats-user U --nats-password-file F  user and password (the file holds the password)
  --nats-prefix P  subject and bucket prefix of the fleet (default ${DEFAULT_PREFIX})
  --nats-insecure  allow a plain connection to a non-loopback server
  --replay DUR     how much of the recent events stream to read at start (default 5m; e.g. 30s, 2h, 0)
`;

const DEFAULT_REPLAY_MS = 5 * 60_000;

/** `30s`, `5m`, `2h`, `1d`, `0`, or plain milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} needs a duration such as 30s, 5m or 2h (got ${JSON.stringify(text)})`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  const ms = Math.round(Number(m[1]) * unit);
  if (ms > 30 * 86_400_000) throw new UsageError(`${flag} is at most 30d (got ${JSON.stringify(text)})`);
  return ms;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** One server URL, checked: its scheme, host and port, and whether a plain connection is allowed. */
function checkServer(given: string, insecure: boolean): { url: string; tls: boolean } {
  const text = /^[a-z]+:\/\//i.test(given) ? given : `nats://${given}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--nats needs a server URL such as nats://127.0.0.1:4222 (got ${JSON.stringify(given)})`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (scheme !== 'nats' && scheme !== 'tls') throw new UsageError(`--nats: use nats:// or tls:// (got ${scheme}://)`);
  if (!url.hostname) throw new UsageError(`--nats: no host in ${JSON.stringify(given)}`);
  if (url.username || url.password) throw new UsageError('--nats: put no user or password in the URL (it shows in `ps`): use --nats-user and --nats-password-file, or --nats-creds');
  const tls = scheme === 'tls';
  if (!tls && !insecure && !isLoopback(url.hostname)) {
    throw new UsageError(
      `--nats ${given}: a plain connection to ${url.hostname} would carry flows, verdicts and credentials unencrypted`,
      'use tls://… for a server elsewhere, or add --nats-insecure if this network is trusted',
    );
  }
  return { url: `${scheme}://${url.host}`, tls };
}

function readSecretFile(flag: string, path: string): Buffer {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UserError(`${flag} ${path}: not a regular file`);
    return readFileSync(path);
  } catch (error) {
    if (error instanceof UserError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(`${flag} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message}`);
  }
}

/** The user name in a creds file's JWT (its `name` claim), made a subject token. */
function credsUser(creds: Buffer): string | undefined {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_\-.=]+)\s*------END NATS USER JWT------/.exec(creds.toString('utf8'))?.[1];
  if (!jwt) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { name?: unknown };
    return typeof claims.name === 'string' ? subjectUser(claims.name) : undefined;
  } catch {
    return undefined;
  }
}

function subjectUser(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'unnamed';
}

/** The options, or undefined without --nats. Throws UsageError / UserError for anything wrong. */
export function fleetOptionsFrom(flags: FleetFlags): FleetClientOptions | undefined {
  const given = flags.nats ?? [];
  const others = (['nats-creds', 'nats-user', 'nats-password-file', 'nats-prefix', 'nats-insecure', 'replay'] as const).filter((k) => flags[k] !== undefined);
  if (given.length === 0) {
    if (others.length > 0) throw new UsageError(`--${others[0]} needs --nats URL`);
    return undefined;
  }
  const insecure = flags['nats-insecure'] === true;
  const servers = given.map((g) => checkServer(g, insecure));
  const tls = servers.some((s) => s.tls);
  if (tls && servers.some((s) => !s.tls)) throw new UsageError('--nats: use tls:// for every server or for none');
  const prefix = flags['nats-prefix'] ?? DEFAULT_PREFIX;
  try {
    fleetNames(prefix);
  } catch (error) {
    throw new UsageError(`--nats-prefix: ${(error as Error).message}`);
  }
  let auth: FleetClientOptions['auth'] = { kind: 'none' };
  let user = subjectUser(userInfo().username);
  if (flags['nats-creds'] !== undefined) {
    if (flags['nats-user'] !== undefined || flags['nats-password-file'] !== undefined) throw new UsageError('choose one of --nats-creds and --nats-user/--nats-password-file');
    const creds = readSecretFile('--nats-creds', flags['nats-creds']);
    if (!/BEGIN NATS USER JWT/.test(creds.toString('utf8')) || !/BEGIN USER NKEY SEED/.test(creds.toString('utf8'))) {
      throw new UserError(`--nats-creds ${flags['nats-creds']}: not a NATS credentials file (it needs a user JWT and an nkey seed)`);
    }
    auth = { kind: 'creds', file: flags['nats-creds'], creds: new Uint8Array(creds) };
    user = credsUser(creds) ?? user;
  } else if (flags['nats-user'] !== undefined || flags['nats-password-file'] !== undefined) {
    const name = flags['nats-user'];
    const file = flags['nats-password-file'];
    if (name === undefined || file === undefined) throw new UsageError('--nats-user and --nats-password-file go together');
    if (!USER_NAME_PATTERN.test(name)) throw new UsageError(`--nats-user ${JSON.stringify(name)}: use 1–64 letters, digits, "_" or "-" (it is a subject token)`);
    const password = readSecretFile('--nats-password-file', file).toString('utf8').replace(/\r?\n$/, '');
    if (password.length === 0) throw new UserError(`--nats-password-file ${file} is empty`);
    auth = { kind: 'password', user: name, password };
    user = name;
  }
  const replayMs = flags.replay !== undefined ? parseDuration('--replay', flags.replay) : DEFAULT_REPLAY_MS;
  return { servers: servers.map((s) => s.url), tls, auth, prefix, user, replayMs };
}
