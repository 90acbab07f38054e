// The parent chain of a process, for a person to read: parent, grandparent, … up to init. Read by
// PID (context, not the verified identity), with two guards: a parent cannot be younger than its
// child, and entries come from a short-lived cache because many processes share their ancestors.
import { readlinkSync } from 'node:fs';
import type { ParentProcess } from '../../attribution/types.js';
import { readProcStat, stripDeleted, type ProcStat } from './procfs.js';
import { GONE_OR_DENIED, expectErrno } from '../../errno.js';

export class AncestorChain {
  /** pid → ancestor facts and when they were read. */
  private readonly ancestors = new Map<number, Ancestor>();

  constructor(private readonly maxParents = 16) {}

  /** Parent, grandparent, … up to init. A parent cannot be younger than its child: a younger process
   *  at the parent's PID means the parent exited and its PID was reused, so the chain stops there.
   *  Ancestors are shared by many processes, so they come from a short-lived cache: the direct parent
   *  at most 100 ms old, further ancestors at most a second (the chain is context for a person, not
   *  the verified identity; the child's PPid itself is always read fresh). */
  parents(stat: ProcStat): ParentProcess[] {
    const chain: ParentProcess[] = [];
    let ppid = stat.ppid;
    let childStart = stat.startTime;
    const seen = new Set<number>([stat.pid]);
    while (ppid > 0 && chain.length < this.maxParents && !seen.has(ppid)) {
      seen.add(ppid);
      const parent = this.ancestor(ppid, chain.length === 0);
      if (!parent || parent.startTime > childStart) break;
      chain.push({ pid: ppid, name: parent.name, ...(parent.path !== undefined ? { path: parent.path } : {}) });
      childStart = parent.startTime;
      ppid = parent.ppid;
    }
    return chain;
  }

  private ancestor(pid: number, fresh: boolean): Ancestor | undefined {
    const now = performance.now();
    const cached = this.ancestors.get(pid);
    if (cached && now - cached.readAt < (fresh ? 100 : 1000)) return cached;
    const stat = safeStat(pid);
    if (!stat) {
      this.ancestors.delete(pid);
      return undefined;
    }
    let path = cached && cached.startTime === stat.startTime ? cached.path : undefined;
    if (path === undefined) {
      try {
        path = stripDeleted(readlinkSync(`/proc/${pid}/exe`));
      } catch (error) {
        expectErrno(error, GONE_OR_DENIED); // exited, a kernel thread, or another user's
        path = undefined;
      }
    }
    const facts: Ancestor = { name: stat.comm, ppid: stat.ppid, startTime: stat.startTime, readAt: now, ...(path !== undefined ? { path } : {}) };
    if (this.ancestors.size >= 4096) this.ancestors.clear();
    this.ancestors.set(pid, facts);
    return facts;
  }
}

interface Ancestor {
  name: string;
  path?: string;
  ppid: number;
  startTime: bigint;
  readAt: number;
}

export function safeStat(pid: number): ProcStat | undefined {
  try {
    return readProcStat(pid);
  } catch (error) {
    expectErrno(error, GONE_OR_DENIED);
    return undefined;
  }
}
