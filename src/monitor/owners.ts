// Socket inode → owning process, found by reading /proc/PID/fd links ("socket:[INODE]"). There is no
// cheaper route without privileges. Kept warm incrementally: processes are scanned when they first
// appear; when a socket nobody is known to hold turns up, known processes are rescanned — most
// recently active first, within a time budget — and a rescan reads only the links of descriptors that
// are new or no longer name a live socket (reading every link of a process holding 10,000
// descriptors takes 4–9 ms). If that finds nothing, full rescans follow.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { parseProcStat } from '../native/linux/procfs.js';
import { GONE_OR_DENIED, expectErrno } from '../errno.js';

export interface SocketOwner {
  pid: number;
  /** Start time (clock ticks since boot) of the process instance seen holding the socket: a token
   *  for PID must carry the same start time, or the PID was reused since. */
  startTime: bigint;
}

interface ProcessEntry {
  uid: number;
  /** False once reading its fd directory was refused (another user's process, without root). */
  readable: boolean;
  startTime: bigint | undefined;
  /** fd name → socket inode (0: not a socket), from the last scan. */
  fds: Map<string, number>;
  /** The socket inodes among them. */
  sockets: Set<number>;
  /** When it was last seen holding a socket it had not held before (rescan order). */
  lastNewSocket: number;
  /** Poll generations of its last scan and last full scan. */
  scannedIn: number;
  fullyScannedIn: number;
}

export interface OwnerIndexOptions {
  procRoot?: string;
  now?: () => number;
}

export interface OwnerIndexStats {
  processes: number;
  sockets: number;
  /** fd directories read in the last poll, links read, and the time spent. */
  scans: number;
  links: number;
  scanMs: number;
}

const SOCKET_LINK = /^socket:\[(\d+)\]$/;

export class OwnerIndex {
  private readonly procs = new Map<number, ProcessEntry>();
  private readonly owners = new Map<number, SocketOwner>();
  /** Sockets seen held by more than one process (shared after a fork, or passed): which of them
   *  started the connection is not known. */
  private readonly shared = new Set<number>();
  private readonly procRoot: string;
  private readonly now: () => number;
  private generation = 0;
  private scans = 0;
  private links = 0;
  private scanMs = 0;

  constructor(options: OwnerIndexOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.now = options.now ?? Date.now;
  }

  /** Starts a poll: lists /proc, scans processes not seen before (until `deadline`, a
   *  performance.now() time), forgets those that exited. Returns false when /proc cannot be listed. */
  refresh(deadline: number): boolean {
    this.generation++;
    this.scans = 0;
    this.links = 0;
    this.scanMs = 0;
    let names: string[];
    try {
      names = readdirSync(this.procRoot);
    } catch (error) {
      expectErrno(error, ['ENOENT', 'EACCES']); // no /proc to scan
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
      this.dropSockets(pid, entry);
      this.procs.delete(pid);
    }
    for (const pid of fresh) {
      let uid: number;
      try {
        uid = statSync(`${this.procRoot}/${pid}`).uid;
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED);
        continue; // exited meanwhile
      }
      const entry: ProcessEntry = { uid, readable: true, startTime: undefined, fds: new Map(), sockets: new Set(), lastNewSocket: 0, scannedIn: 0, fullyScannedIn: 0 };
      this.procs.set(pid, entry);
      // New processes are where most new sockets come from; one left unscanned now is a candidate
      // for resolve() later.
      if (performance.now() < deadline) this.scan(pid, entry, undefined);
    }
    return true;
  }

  /** Tries to find the owners of `inodes` (sockets with the given uids) by rescanning known, readable
   *  processes until all are found or `deadline` passes. `isLive` says whether an inode is a live
   *  socket now (from the same dump): links to live sockets need not be read again. */
  resolve(inodes: Iterable<number>, uids: ReadonlySet<number> | undefined, deadline: number, isLive: (inode: number) => boolean): void {
    const missing = new Set<number>();
    for (const inode of inodes) if (!this.owners.has(inode)) missing.add(inode);
    if (missing.size === 0) return;
    // Processes of the sockets' uids first (a socket's uid is its creator's), most recently active
    // first; then the rest, since a process may have changed uid after creating its socket.
    const rank = (e: ProcessEntry): number => (uids && !uids.has(e.uid) ? 1 : 0);
    const candidates = [...this.procs.entries()]
      .filter(([, e]) => e.readable)
      .sort((a, b) => rank(a[1]) - rank(b[1]) || b[1].lastNewSocket - a[1].lastNewSocket);
    for (const full of [false, true]) {
      for (const [pid, entry] of candidates) {
        if (missing.size === 0 || performance.now() >= deadline) return;
        if (entry.fullyScannedIn === this.generation || (!full && entry.scannedIn === this.generation)) continue;
        this.scan(pid, entry, full ? undefined : isLive);
        for (const inode of missing) if (this.owners.has(inode)) missing.delete(inode);
      }
    }
  }

  /** Rescans the parents of these sockets' owners (once each per poll, until `deadline`): a child
   *  inherits its parent's sockets, and a socket a child connected while its parent kept it open (then
   *  exec'd another program, say) must be known as shared, or the monitor would name whichever of the
   *  two it happened to scan first. */
  checkParents(inodes: Iterable<number>, deadline: number, isLive: (inode: number) => boolean): void {
    for (const inode of inodes) {
      if (performance.now() >= deadline) return;
      const owner = this.owners.get(inode);
      if (!owner) continue;
      let ppid: number | undefined;
      try {
        ppid = parseProcStat(readFileSync(`${this.procRoot}/${owner.pid}/stat`, 'latin1'))?.ppid;
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED);
        continue;
      }
      const parent = ppid !== undefined ? this.procs.get(ppid) : undefined;
      if (ppid === undefined || !parent || !parent.readable || parent.scannedIn === this.generation) continue;
      this.scan(ppid, parent, isLive);
    }
  }

  ownerOf(inode: number): SocketOwner | undefined {
    return this.owners.get(inode);
  }

  /** The PIDs that held `inode` at their last scan, when more than one process did; else []. */
  holders(inode: number): number[] {
    if (!this.shared.has(inode)) return [];
    const pids: number[] = [];
    for (const [pid, entry] of this.procs) if (entry.sockets.has(inode)) pids.push(pid);
    if (pids.length < 2) {
      this.shared.delete(inode);
      return [];
    }
    return pids;
  }

  /** Whether every readable process has been fully scanned this poll: then a socket still without
   *  an owner is held by no process this user can see. */
  exhausted(): boolean {
    for (const e of this.procs.values()) if (e.readable && e.fullyScannedIn !== this.generation) return false;
    return true;
  }

  forget(inode: number): void {
    this.owners.delete(inode);
    this.shared.delete(inode);
  }

  stats(): OwnerIndexStats {
    return { processes: this.procs.size, sockets: this.owners.size, scans: this.scans, links: this.links, scanMs: this.scanMs };
  }

  private startTimeOf(pid: number): bigint | undefined {
    try {
      return parseProcStat(readFileSync(`${this.procRoot}/${pid}/stat`, 'latin1'))?.startTime;
    } catch (error) {
      expectErrno(error, GONE_OR_DENIED);
      return undefined;
    }
  }

  private dropSockets(pid: number, entry: ProcessEntry): void {
    for (const inode of entry.sockets) if (this.owners.get(inode)?.pid === pid) this.owners.delete(inode);
  }

  /** Reads a process's fd links (all of them, or with `isLive` only those that may have changed).
   *  The start time is read before and after: if they differ the PID was reused meanwhile and the
   *  links read may belong to two processes, so the scan is thrown away. */
  private scan(pid: number, entry: ProcessEntry, isLive: ((inode: number) => boolean) | undefined): void {
    const started = performance.now();
    entry.scannedIn = this.generation;
    this.scans++;
    const before = this.startTimeOf(pid);
    const reused = before === undefined || (entry.startTime !== undefined && entry.startTime !== before);
    if (reused) {
      this.dropSockets(pid, entry);
      entry.fds = new Map();
      entry.sockets = new Set();
      isLive = undefined;
    }
    // With nothing known about its descriptors, an incremental scan reads every link: a full one.
    const full = !isLive || entry.fds.size === 0;
    const dir = `${this.procRoot}/${pid}/fd`;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') entry.readable = false;
      this.scanMs += performance.now() - started;
      return;
    }
    const fds = new Map<string, number>();
    for (const fd of names) {
      const previous = entry.fds.get(fd);
      if (isLive && previous !== undefined && previous !== 0 && isLive(previous)) {
        fds.set(fd, previous);
        continue;
      }
      let link: string;
      try {
        link = readlinkSync(`${dir}/${fd}`);
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED);
        continue; // closed between readdir and readlink
      }
      this.links++;
      const m = link.charCodeAt(0) === 115 /* s */ ? SOCKET_LINK.exec(link) : null;
      fds.set(fd, m ? Number(m[1]) : 0);
    }
    const after = this.startTimeOf(pid);
    if (before === undefined || after !== before) {
      this.scanMs += performance.now() - started;
      return; // exited or reused during the scan: nothing read can be trusted
    }
    if (full) entry.fullyScannedIn = this.generation;
    // Sockets it no longer holds lose this owner.
    const held = new Set<number>();
    for (const inode of fds.values()) if (inode !== 0) held.add(inode);
    for (const inode of entry.sockets) if (!held.has(inode) && this.owners.get(inode)?.pid === pid) this.owners.delete(inode);
    let found = false;
    for (const inode of held) {
      const current = this.owners.get(inode);
      // A socket shared after fork stays with the process first seen holding it, while it holds it.
      if (current && current.pid !== pid && this.procs.get(current.pid)?.sockets.has(inode)) {
        this.shared.add(inode);
        continue;
      }
      if (!current) found = true;
      this.owners.set(inode, { pid, startTime: before });
    }
    entry.fds = fds;
    entry.sockets = held;
    entry.startTime = before;
    if (found) entry.lastNewSocket = this.now();
    this.scanMs += performance.now() - started;
  }
}
