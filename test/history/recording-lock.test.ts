// One recorder per history file: a second is refused with who holds it, and the file is free again
// once the first stops (or its process dies: the kernel drops flock locks).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordingBusy, claimRecording, lockPathOf } from '../../src/history/recording-lock.js';
import { startHistory } from '../../src/history/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-lock-'));
  dirs.push(d);
  return join(d, 'history.db');
}

describe.skipIf(process.platform !== 'linux')('the recording lock', () => {
  it('a second recorder is refused, naming the first; after it stops the file can be claimed again', async () => {
    const path = file();
    const first = startHistory({ path, program: 'flowtop', log: () => {}, thread: 'inline' });
    let refused: unknown;
    try {
      startHistory({ path, program: 'flowtop agent', log: () => {}, thread: 'inline' });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(RecordingBusy);
    expect((refused as Error).message).toMatch(new RegExp(`is being recorded into by another flowtop \\(pid ${process.pid}, since \\d{4}-`));
    await first.close();
    const again = startHistory({ path, program: 'flowtop', log: () => {}, thread: 'inline' });
    await again.close();
  });

  it('a holder that died leaves the file free; one that wrote no name (or garbage) is refused unnamed', async () => {
    const path = file();
    writeFileSync(lockPathOf(path), '{"pid": "x"');
    // flock(1) holds the same kind of lock, and writes nothing into the file.
    // (-o: the lock stays with flock itself, not with the command it runs.)
    const holder = spawn('flock', ['-n', '-o', lockPathOf(path), '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    await new Promise<void>((r) => holder.stdout!.once('data', () => r()));
    expect(() => claimRecording(path, 'flowtop')).toThrow(`${path} is being recorded into by another process; one recorder per file`);
    const exited = new Promise((r) => holder.once('exit', r));
    process.kill(-holder.pid!, 'SIGKILL');
    await exited;
    claimRecording(path, 'flowtop').release();
  });
});
