// Where the extension socket is (docs/protocol.md, "Transport"): --socket flags, else FLOWTOP_SOCKET,
// else the platform default.
import { UsageError } from '../errors.js';

export const LINUX_SOCKET = '/run/flowtop/flowtop.sock';
export const DARWIN_SOCKET = '/var/run/flowtop.sock';
export const SOCKET_ENV = 'FLOWTOP_SOCKET';
/** sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included. */
const MAX_SOCKET_PATH_BYTES: Record<string, number> = { linux: 107, darwin: 103 };

export function defaultSocketPath(platform: NodeJS.Platform = process.platform): string {
  return platform === 'darwin' ? DARWIN_SOCKET : LINUX_SOCKET;
}

/** The paths the person asked for: the --socket values, else FLOWTOP_SOCKET; empty when neither. */
export function explicitSocketPaths(flags: readonly string[], env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string[] {
  const given = flags.length > 0 ? flags.map((p) => ({ p, from: '--socket' })) : env[SOCKET_ENV] ? [{ p: env[SOCKET_ENV], from: SOCKET_ENV }] : [];
  const limit = MAX_SOCKET_PATH_BYTES[platform] ?? 103;
  const out: string[] = [];
  for (const { p, from } of given) {
    if (p.trim() === '') throw new UsageError(`${from} needs a path to a Unix socket`);
    if (p.includes('\0')) throw new UsageError(`${from} path contains a NUL byte`);
    if (Buffer.byteLength(p) > limit) {
      throw new UsageError(`${from} path is ${Buffer.byteLength(p)} bytes; a Unix socket path holds at most ${limit}`, 'use a shorter path (e.g. a symlinked directory)');
    }
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** Every socket to connect to: the explicit ones, else the platform default. */
export function socketPathsFrom(flags: readonly string[], env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string[] {
  const explicit = explicitSocketPaths(flags, env, platform);
  return explicit.length > 0 ? explicit : [defaultSocketPath(platform)];
}
