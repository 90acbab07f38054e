// CPU time from /proc, for the benchmarks' "what did it cost" lines.
import { readFileSync } from 'node:fs';

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
