// The agent's files beside its socket: the socket itself and `<socket>.status.json`. The socket's
// directory may be shared (--socket /tmp/x.sock), so no file is ever created, chmod-ed or chown-ed there
// by name: the socket is bound, given its mode and owner, and each status file written inside a
// private directory (mode 0700, root's) next to it, then renamed into place — rename replaces a
// planted name, it never follows it.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isLive } from '../protocol/server.js';
import { unsafeDirectoryReason } from './safe-directory.js';
import { expectErrno } from '../errno.js';

/** Where a running agent writes its state for `--status`: next to its socket. */
export function statusFileFor(socketPath: string): string {
  return `${socketPath}.status.json`;
}

/** `.<socket name>.d` + six random characters: short, because a Unix socket path has at most 107 bytes. */
const PRIVATE_INFIX = '.d';

export class SocketFiles {
  private socketIno?: number;
  private constructor(readonly socketPath: string, private readonly privateDir: string) {}

  /** Checks the directory and whatever is at the socket path, and makes the private directory. Throws
   *  an Error saying what is wrong and what to do. */
  static async prepare(socketPath: string): Promise<SocketFiles> {
    const dir = dirname(socketPath);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const unsafe = unsafeDirectoryReason(dir);
    if (unsafe) throw new Error(`refusing the socket directory ${dir}: ${unsafe}. Use a directory only root can write (the default /run/flowtop), or a sticky one like /tmp`);
    await checkExisting(socketPath);
    removeLeftovers(socketPath);
    const privateDir = mkdtempSync(join(dir, `.${basename(socketPath)}${PRIVATE_INFIX}`));
    chmodSync(privateDir, 0o700);
    return new SocketFiles(socketPath, privateDir);
  }

  /** Where the server binds: inside the private directory, until `publish` moves it. */
  get bindPath(): string {
    return join(this.privateDir, 's');
  }

  /** Gives the bound socket its mode and group (by name, but inside the private directory nobody else
   *  can touch), then renames it to the socket path. */
  publish(mode: number, gid: number | undefined, log: (line: string) => void): void {
    chmodSync(this.bindPath, mode);
    if (gid !== undefined) {
      try {
        chownSync(this.bindPath, 0, gid);
      } catch (error) {
        log(`cannot give the socket to its group: ${(error as Error).message}`);
      }
    }
    this.socketIno = lstatSync(this.bindPath).ino;
    renameSync(this.bindPath, this.socketPath);
  }

  /** Replaces the status file (written in the private directory, renamed over the old one). */
  writeStatus(text: string): void {
    const temp = join(this.privateDir, `status.${randomBytes(4).toString('hex')}`);
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, statusFileFor(this.socketPath));
  }

  /** Removes the socket and status file (only if they are still ours) and the private directory. */
  remove(): void {
    const own = (path: string, test: (st: Stats) => boolean): void => {
      try {
        const st = lstatSync(path);
        if (st.uid === 0 && test(st)) unlinkSync(path);
      } catch (error) {
        expectErrno(error, ['ENOENT']); // gone already
      }
    };
    own(this.socketPath, (st) => st.isSocket() && st.ino === this.socketIno);
    own(statusFileFor(this.socketPath), (st) => st.isFile());
    rmSync(this.privateDir, { recursive: true, force: true });
  }
}

/** Refuses anything at the socket path but a stale socket of root's (a live one is another server). */
async function checkExisting(socketPath: string): Promise<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (st.isSymbolicLink()) throw new Error(`${socketPath} is a symbolic link: refusing to replace it (remove it, or pick another --socket)`);
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket: refusing to replace it`);
  if (await isLive(socketPath)) throw new Error(`something already listens on ${socketPath}: refusing to replace it (is another agent running? \`flowtop agent --status --socket ${socketPath}\`)`);
  if (st.uid !== 0) throw new Error(`${socketPath} is a stale socket of uid ${st.uid}, not root's: refusing to replace it (remove it, or pick another --socket)`);
}

/** Private directories a killed agent left beside this socket path (root's own directories only). */
function removeLeftovers(socketPath: string): void {
  const dir = dirname(socketPath);
  const prefix = `.${basename(socketPath)}${PRIVATE_INFIX}`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix) || name.length !== prefix.length + 6) continue;
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isDirectory() && st.uid === 0 && (st.mode & 0o777) === 0o700) rmSync(path, { recursive: true, force: true });
  }
}

/** Reads a status file the way `--status` must: not through a symlink, not a FIFO, and only if root
 *  wrote it (in a shared directory anyone could plant one). */
export function readStatusFile(path: string): { text: string } | { problem: string } | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return { problem: `${path} is a symbolic link, not the agent's status file: ignored` };
    return { problem: `cannot read ${path}: ${(error as Error).message}` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { problem: `${path} is not a regular file: ignored` };
    if (st.uid !== 0) return { problem: `${path} belongs to uid ${st.uid}, not root: not written by the agent, ignored` };
    if (st.size > 1 << 20) return { problem: `${path} is too large to be a status file: ignored` };
    const buf = Buffer.alloc(st.size);
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, read);
      if (n <= 0) break;
      read += n;
    }
    return { text: buf.toString('utf8', 0, read) };
  } finally {
    closeSync(fd);
  }
}
