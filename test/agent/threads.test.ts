// The agent's threads, as `top -H` shows them: each names itself (every thread of a Node process is
// otherwise "node"), and the history writer runs at a lower priority than the queue threads that hold
// connections — its writes can wait, a held connection cannot.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDir, skipUnlessCapable, waitFor } from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();
const historyDir = mkdtempSync(join(tmpdir(), 'flowtop-threads-'));

interface ThreadInfo {
  name: string;
  nice: number;
}

/** The threads of a process: name and nice value (/proc/PID/task/TID/stat, field 19). */
function threadsOf(pid: number): ThreadInfo[] {
  const out: ThreadInfo[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ name: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(), nice: Number(fields[16]) });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** The process started as `pid` or one of its descendants (the namespace's enter tool may fork). */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    // no children
  }
  return [pid, ...children.flatMap(descendants)];
}

describe.skipIf(skip)('the agent\'s threads', () => {
  const f = useAgent({ flags: ['--history', join(historyDir, 'history.db')] });
  afterAll(() => cleanupDir(historyDir));

  it('name themselves, and the history writer gives way to the queue threads', async () => {
    const threads = await waitFor('the agent\'s named threads', () => {
      for (const pid of descendants(f.agent.proc.pid!)) {
        const list = threadsOf(pid);
        if (list.some((t) => t.name === 'flowtop-history')) return list;
      }
      return undefined;
    });
    const names = threads.map((t) => t.name);
    expect(names).toContain('flowtop-queue0');
    expect(names).toContain('flowtop-dns');
    const queue = threads.find((t) => t.name === 'flowtop-queue0')!;
    const writer = threads.find((t) => t.name === 'flowtop-history')!;
    expect(writer.nice).toBeGreaterThanOrEqual(queue.nice + 10);
  }, 30_000);
});
