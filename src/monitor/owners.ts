// Socket inode → owning process, found by reading /proc/PID/fd links ("socket:[INODE]"). There is no
// cheaper route without privileges. Kept warm incrementally: processes are scanned when they first
// appear, and known ones are rescanned only when a socket nobody is known to hold turns up — most
// recently active first, within a time budget, so one poll never stalls on a process with 10,000 fds
// (LINUX-NOTES: ~3.8–8.9 ms to scan such a process).
import { readdirSync, readlinkSync, statSync } from 'node:fs';

export interface SocketOwner {
  pid: number;
  /** The fd name in /proc/PID/fd through which the socket was seen (for re-checking). */
  fd: string;
}

interface ProcessEntry {
  uid: number;
  /** False once reading its fd directory was refused (another user's process, without root). */
  readable: boolean;
  /** Socket inodes seen in its last scan. */
  sockets: Set<number>;
  /** When it was last seen holding a socket it had not held before (rescan order). */
  lastNewSocket: number;
  /** Poll generation of its last scan: scanned at most once per poll. */
  scannedIn: number;
}

export interface OwnerIndexOptions {
  procRoot?: string;
  now?: () => number;
}

export interface OwnerIndexStats {
  processes: number;
  sockets: number;
  /** fd directories read in the last poll, and the time spent on them. */
  scans: number;
  scanMs: number;
}

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

export class OwnerIndex {
  private readonly procs = new Map<number, ProcessEntry>();
  private readonly owners = new Map<number, SocketOwner>();
  private readonly procRoot: string;
  private readonly now: () => number;
  private generation = 0;
  private scans = 0;
  private scanMs = 0;

  constructor(options: OwnerIndexOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.now = options.now ?? Date.now;
  }

  /** Starts a poll: lists /proc, scans processes not seen before, forgets those that exited.
   *  Returns false when /proc cannot be listed. */
  refresh(deadline: number): boolean {
    this.generation++;
    this.scans = 0;
    this.scanMs = 0;
    let names: string[];
    try {
      names = readdirSync(this.procRoot);
    } catch {
      return false;
    }
    const alive = new Set<number>();
    const fresh: number[] = [];
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(name);
      if (!Number.isSafeInteger(pid) || pid <= 0) continue;
      alive.add(pid);
      if (!this.procs.has(pid)) fresh.push(pid);
    }
    for (const [pid, entry] of this.procs) {
      if (alive.has(pid)) continue;
      for (const inode of entry.sockets) if (this.owners.get(inode)?.pid === pid) this.owners.delete(inode);
      this.procs.delete(pid);
    }
    for (const pid of fresh) {
      let uid: number;
      try {
        uid = statSync(`${this.procRoot}/${pid}`).uid;
      } catch {
        continue; // exited meanwhile
      }
      const entry: ProcessEntry = { uid, readable: true, sockets: new Set(), lastNewSocket: 0, scannedIn: 0 };
      this.procs.set(pid, entry);
      // New processes are scanned first, whatever the budget says about the rest: they are where
      // most new sockets come from. A process that could not be scanned now is scanned on demand.
      if (performance.now() < deadline) this.scan(pid, entry);
    }
    return true;
  }

  /** Tries to find the owners of `inodes` (of sockets with the given uids) by rescanning known,
   *  readable processes until all are found or `deadline` (performance.now() ms) passes. */
  resolve(inodes: Iterable<number>, uids: ReadonlySet<number> | undefined, deadline: number): void {
    const missing = new Set<number>();
    for (const inode of inodes) if (!this.owners.has(inode)) missing.add(inode);
    if (missing.size === 0) return;
    // Processes of the sockets' uids first (a socket's uid is its creator's), most recently active
    // first; then the rest, since a process may have changed uid after creating its socket.
    const rank = (e: ProcessEntry): number => (uids && !uids.has(e.uid) ? 1 : 0);
    const candidates = [...this.procs.entries()]
      .filter(([, e]) => e.readable && e.scannedIn !== this.generation)
      .sort((a, b) => rank(a[1]) - rank(b[1]) || b[1].lastNewSocket - a[1].lastNewSocket);
    for (const [pid, entry] of candidates) {
      if (performance.now() >= deadline) return;
      for (const inode of this.scan(pid, entry)) missing.delete(inode);
      for (const inode of missing) if (this.owners.has(inode)) missing.delete(inode);
      if (missing.size === 0) return;
    }
  }

  ownerOf(inode: number): SocketOwner | undefined {
    return this.owners.get(inode);
  }

  /** Whether every readable process has been scanned this poll: then a socket still without an
   *  owner is held by no process we can see. */
  exhausted(): boolean {
    for (const e of this.procs.values()) if (e.readable && e.scannedIn !== this.generation) return false;
    return true;
  }

  /** Re-reads the fd link: true when PID still holds the socket through that fd. */
  confirm(inode: number, owner: SocketOwner): boolean {
    try {
      return readlinkSync(`${this.procRoot}/${owner.pid}/fd/${owner.fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  }

  forget(inode: number): void {
    this.owners.delete(inode);
  }

  stats(): OwnerIndexStats {
    return { processes: this.procs.size, sockets: this.owners.size, scans: this.scans, scanMs: this.scanMs };
  }

  /** Reads one process's fd links; returns the socket inodes it holds that were not known before. */
  private scan(pid: number, entry: ProcessEntry): number[] {
    const started = performance.now();
    entry.scannedIn = this.generation;
    this.scans++;
    const dir = `${this.procRoot}/${pid}/fd`;
    let fds: string[];
    try {
      fds = readdirSync(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') entry.readable = false;
      this.scanMs += performance.now() - started;
      return [];
    }
    const found: number[] = [];
    const held = new Set<number>();
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`${dir}/${fd}`);
      } catch {
        continue; // closed between readdir and readlink
      }
      if (link.charCodeAt(0) !== 115 /* s */) continue;
      const m = SOCKET_LINK.exec(link);
      if (!m) continue;
      const inode = Number(m[1]);
      held.add(inode);
      const current = this.owners.get(inode);
      // A socket shared after fork stays with the process first seen holding it, while it holds it.
      if (!current || current.pid === pid || !this.procs.get(current.pid)?.sockets.has(inode)) {
        if (!current) found.push(inode);
        this.owners.set(inode, { pid, fd });
      }
    }
    for (const inode of entry.sockets) if (!held.has(inode) && this.owners.get(inode)?.pid === pid) this.owners.delete(inode);
    if (found.length > 0) entry.lastNewSocket = this.now();
    entry.sockets = held;
    this.scanMs += performance.now() - started;
    return found;
  }
}
