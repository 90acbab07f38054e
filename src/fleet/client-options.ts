// The client's NATS flags (`flowtop --nats …`, `flowtop list --nats …`): the connection flags every
// flowtop program shares (connect-options.ts: the same checks, the same loopback rule as the agent),
// plus what only a client has: --replay, and the user name its requests carry.
import { userInfo } from 'node:os';
import { UsageError } from '../errors.js';
import { NATS_FLAGS_HELP, NATS_FLAG_OPTIONS, natsLinkConfig, type NatsFlagValues, type NatsLinkConfig } from './connect-options.js';
import { USER_NAME_PATTERN } from './wire.js';

export interface FleetClientOptions {
  /** How to reach the servers, checked (connect-options.ts). */
  link: NatsLinkConfig;
  /** The user name put in request subjects (the NATS user; the agent records it as who decided). */
  user: string;
  /** How far back the events stream is read at start. */
  replayMs: number;
}

export interface FleetFlags extends NatsFlagValues {
  replay?: string;
}

/** parseArgs options for the flags above (shared by `flowtop` and `flowtop list`). */
export const FLEET_FLAG_OPTIONS = {
  ...NATS_FLAG_OPTIONS,
  replay: { type: 'string' },
} as const;

export const FLEET_USAGE = `${NATS_FLAGS_HELP}  --replay DUR         how much of the recent events stream to read at start (default 5m; e.g. 30s, 2h, 0)
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

/** The user name in a creds file's JWT (its `name` claim), made a subject token. */
function credsUser(creds: Uint8Array): string | undefined {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_\-.=]+)\s*------END NATS USER JWT------/.exec(new TextDecoder().decode(creds))?.[1];
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

/** The options, or undefined without --nats. Throws UsageError for anything wrong, worded for `command`
 *  ('' for `flowtop` itself, 'list'). */
export function fleetOptionsFrom(flags: FleetFlags, command = ''): FleetClientOptions | undefined {
  const fail = (message: string): never => {
    throw new UsageError(command ? `${command}: ${message}` : message, `run \`flowtop ${command ? `${command} ` : ''}--help\` for the usage`);
  };
  if (flags.nats === undefined && flags.replay !== undefined) fail('--replay needs --nats URL');
  const link = natsLinkConfig(command, flags);
  if (!link) return undefined;
  // The NATS user is the last token of the request subjects: it must be one.
  if (link.user !== undefined && !USER_NAME_PATTERN.test(link.user)) {
    fail(`--nats-user ${JSON.stringify(link.user)}: use 1–64 letters, digits, "_" or "-" (it is a subject token)`);
  }
  const user = link.user ?? (link.creds ? credsUser(link.creds) : undefined) ?? subjectUser(userInfo().username);
  let replayMs = DEFAULT_REPLAY_MS;
  try {
    if (flags.replay !== undefined) replayMs = parseDuration('--replay', flags.replay);
  } catch (error) {
    fail((error as Error).message);
  }
  return { link, user, replayMs };
}
