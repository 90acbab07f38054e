// Attack (on integrity): two `flowtop rules add --rules F` loops on one file. Each rule a command said
// it added must be in the file afterwards; before the file was locked across read-modify-write, a few
// in every few hundred were silently overwritten by the other writer.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFixture, exited, tempDir } from '../rules/helpers.js';
import { reportAttack } from './report.js';

describe('adversarial: concurrent rules add on one file', () => {
  it('no rule acknowledged as added is lost', async () => {
    const loop = await bundleFixture('test/adversarial/fixtures/rules-add-loop.ts', 'rules-add-loop');
    const file = join(tempDir(), 'rules.json');
    const writers = ['a', 'b', 'c'].map((name) => {
      const child = spawn(process.execPath, [loop, file, name, '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      return { child, out: () => out, err: () => err };
    });
    let crashes = 0;
    for (const w of writers) if ((await exited(w.child, 60_000)).code !== 0) crashes++;
    const acked = writers.flatMap((w) => w.out().split('\n').filter(Boolean));
    const stored = new Set((JSON.parse(readFileSync(file, 'utf8')) as { rules: Array<{ note?: string }> }).rules.map((r) => r.note));
    const lost = acked.filter((note) => !stored.has(note));
    reportAttack('concurrent-rules-add', { tries: acked.length, bypasses: lost.length, crashes });
    expect(writers.map((w) => w.err()).join('')).toBe('');
    expect(acked.length).toBe(360);
    expect(lost).toEqual([]);
    expect(crashes).toBe(0);
  }, 90_000);
});
