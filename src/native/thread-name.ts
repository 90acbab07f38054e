// Names the calling thread for `top -H`, `ps -L` and /proc/PID/task/*/comm, where every thread of a
// Node process is otherwise "node": which of the agent's threads is busy is then plain to see.
import { libc } from './linux/libc.js';

/** Best effort: on Linux only, and nothing happens when libc cannot be loaded. */
export function nameThisThread(name: string): void {
  if (process.platform !== 'linux') return;
  try {
    libc().nameThread(name);
  } catch {
    // no libc through koffi: the thread keeps its name, nothing else depends on it
  }
}
