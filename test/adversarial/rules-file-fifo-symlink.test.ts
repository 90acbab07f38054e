// Attack: a rules file that is a FIFO (the agent blocked in its read forever, with no message) or a
// symbolic link (the first write renamed a plain file over the link, silently detaching it from its
// target). Both are refused at once with a message that says which and what to pass instead; the link
// and its target are left exactly as they were.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, buildAgent, cleanupDir, removeBuild, skipUnlessCapable } from '../agent/helpers.js';
import { tempDir } from '../rules/helpers.js';
import { reportAttack } from './report.js';

const skip = skipUnlessCapable();

describe.skipIf(skip)('adversarial: a FIFO or a symlink as the rules file', () => {
  let ns: Netns;
  let dist: string;
  let dir: string;

  beforeAll(() => {
    dist = buildAgent();
    ns = new Netns();
    dir = tempDir();
  }, 60_000);

  afterAll(() => {
    ns?.delete();
    cleanupDir(dir);
    removeBuild();
  });

  it('refuses both, at once and saying which, and changes neither the link nor its target', () => {
    const counts = { tries: 0, bypasses: 0, crashes: 0 };
    const problems: string[] = [];
    const flowtop = (...args: string[]): { code: number | null; out: string; ms: number } => {
      const t0 = Date.now();
      const r = spawnSync(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(dist, 'run-agent.mjs'), ...args], { encoding: 'utf8', timeout: 10_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
    };
    const fifo = join(dir, 'fifo.json');
    spawnSync('mkfifo', [fifo]);
    const target = join(dir, 'real.json');
    const original = JSON.stringify({ version: 1, rules: [] });
    writeFileSync(target, original);
    const link = join(dir, 'link.json');
    symlinkSync(target, link);
    const agent = (rules: string): ReturnType<typeof flowtop> => flowtop('agent', '--no-history', '--socket', join(dir, 'a.sock'), '--rules', rules, '--queue-num', '7351', '--no-bpf');
    const cases: Array<[string, () => ReturnType<typeof flowtop>, RegExp]> = [
      ['agent, FIFO', () => agent(fifo), /fifo\.json is not a regular file \(it is a FIFO\): refusing it/],
      ['rules add, FIFO', () => flowtop('rules', 'add', '--allow', '--port', '1', '--rules', fifo), /is not a regular file \(it is a FIFO\)/],
      ['agent, symlink', () => agent(link), /link\.json is a symbolic link to .*real\.json: refusing it/],
      ['rules add, symlink', () => flowtop('rules', 'add', '--allow', '--port', '1', '--rules', link), /is a symbolic link to .*real\.json: refusing it/],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [name, run, expected] of cases) {
        counts.tries++;
        const r = run();
        if (r.code === null) {
          counts.crashes++; // hung until the 10 s timeout
          problems.push(`${name}: hung`);
        } else if (r.code === 0 || !expected.test(r.out)) {
          counts.bypasses++;
          problems.push(`${name}: exit ${r.code}: ${r.out.trim()}`);
        }
        if (!lstatSync(link).isSymbolicLink() || readlinkSync(link) !== target || readFileSync(target, 'utf8') !== original) {
          counts.bypasses++;
          problems.push(`${name}: the link or its target changed`);
          symlinkSync(target, `${link}.new`);
        }
      }
    }
    reportAttack('rules-file-fifo-symlink', counts);
    expect(problems).toEqual([]);
    expect(counts.bypasses).toBe(0);
    expect(counts.crashes).toBe(0);
  }, 90_000);
});
