// Attack (on integrity): `flowtop rules add` writers killed with SIGKILL at random moments, two at a
// time on one file (so a writer often dies holding the lock). The file must always parse, every rule a
// writer acknowledged must be in it, and no writer may wait on a lock its dead holder left.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRulesDocument } from '../../src/rules/document.js';
import { bundleFixture, exited, tempDir } from '../rules/helpers.js';
import { reportAttack } from './report.js';

describe('adversarial: SIGKILL during rule writes', () => {
  it('leaves a valid file holding every acknowledged rule', async () => {
    const loop = await bundleFixture('test/adversarial/fixtures/rules-add-loop.ts', 'rules-add-loop');
    const file = join(tempDir(), 'rules.json');
    const acked: string[] = [];
    let kills = 0;
    let invalid = 0;
    let crashes = 0;
    const killer = async (name: string, rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        const child = spawn(process.execPath, [loop, file, `${name}${i}`, '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        // Killed at a random moment once it is writing (its first rule acknowledged), not while Node
        // starts: on a busy machine a fixed delay from the spawn often killed it before any write.
        const writing = Date.now();
        while (!out.includes('\n') && child.exitCode === null && Date.now() - writing < 10_000) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, Math.random() * 800));
        child.kill('SIGKILL');
        const end = await exited(child);
        if (end.signal === 'SIGKILL') kills++;
        else crashes++;
        if (err) crashes++;
        // a line is only complete once its newline was written
        acked.push(...out.split('\n').slice(0, -1));
        try {
          if (!parseRulesDocument(JSON.parse(readFileSync(file, 'utf8'))).ok) invalid++;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') invalid++;
        }
      }
    };
    await Promise.all([killer('x', 30), killer('y', 30)]);
    const stored = new Set((JSON.parse(readFileSync(file, 'utf8')) as { rules: Array<{ note?: string }> }).rules.map((r) => r.note));
    const lost = acked.filter((note) => !stored.has(note));
    reportAttack('sigkill-rule-writes', { tries: kills, bypasses: lost.length + invalid, crashes });
    expect(acked.length).toBeGreaterThan(50); // the writers really got rules written between kills
    expect(invalid).toBe(0);
    expect(lost).toEqual([]);
    expect(crashes).toBe(0);
  }, 120_000);
});
