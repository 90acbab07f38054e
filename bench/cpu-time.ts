// CPU time from /proc, for the benchmarks' "what did it cost" lines.
import { readFileSync, readdirSync } from 'node:fs';

/** User + system CPU time in ms (steps of 10: clock ticks of 10 ms) from a /proc stat file: a
 *  process's (`/proc/PID/stat`, all its threads) or one thread's (`/proc/PID/task/TID/stat`).
 *  Undefined once it is gone. */
export function cpuMsFrom(statPath: string): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(statPath, 'utf8');
  } catch {
    return undefined;
  }
  // the fields after the command name (which may hold spaces and parentheses); utime is the 14th
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU time (ms) of each thread of a process (`'self'` for this one), by thread id, with the
 *  thread's name; threads that end meanwhile are left out. */
export function threadCpuMs(pid: number | 'self'): Map<string, { name: string; ms: number }> {
  const times = new Map<string, { name: string; ms: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return times;
  }
  for (const tid of tids) {
    const ms = cpuMsFrom(`/proc/${pid}/task/${tid}/stat`);
    let name = '?';
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch { /* ended */ }
    if (ms !== undefined) times.set(tid, { name, ms });
  }
  return times;
}
