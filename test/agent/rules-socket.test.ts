// The rules conversation with a real agent in a namespace: `flowtop rules list|add|rm|export|policy
// --socket` beside it finish with exit 0 (each answer carries the request's ref), a second client
// learns the rules from its snapshot and every change as `rule-changed`, a rule list past one line
// arrives whole, and hit counts reach subscribers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage, Rule } from '../../src/protocol/messages.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, connectScript, hostRules, lines, removeBuild,
  skipUnlessCapable, spawnIn, startAgent, startServer, waitFor, type RunningAgent,
} from './helpers.js';

const skip = skipUnlessCapable();

/** Runs the built CLI (as root, outside the namespace: the socket is a file) and collects its output. */
function cli(dist: string, args: string[], timeoutMs = 15_000): Promise<{ code: number | null; out: string; err: string }> {
  const child: ChildProcess = spawn(process.execPath, [join(dist, 'run-agent.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`flowtop ${args.join(' ')} did not finish within ${timeoutMs} ms: ${out} ${err}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe.skipIf(skip)('the rules conversation with a running agent', () => {
  let ns: Netns;
  let cg: TestCgroup;
  let dist: string;
  let server: ChildProcess;
  let before: string;
  let agent: RunningAgent;
  const PORT = 7610;

  beforeAll(async () => {
    before = hostRules();
    dist = buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    server = await startServer(ns, PORT);
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    // A rules file the agent starts with: its policy says block; the agent's flag says allow.
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({ version: 1, policy: { defaultAction: 'block', allowPackaged: true }, rules: [] }));
    agent = await startAgent(ns, cg, ['--queue-num', '7610', '--timeout', '10s', '--default', 'allow', '--block-mode', 'drop'], dir);
  }, 60_000);

  afterAll(async () => {
    expect(await agent?.stop()).toBe(0);
    cleanupDir(agent?.dir ?? '/nonexistent');
    server?.kill();
    ns?.delete();
    cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  it('add, list, rm and export through the socket finish at once with exit 0; a second client sees every change', async () => {
    const watcher = new TestClient(agent.socket);
    await watcher.subscribe();
    // the snapshot carries the (empty) rule list: "no rules", not "no rule list"
    await watcher.waitFor('the snapshot rule list', (m) => m.type === 'rules' && m.rules.length === 0 && m.continues === undefined);

    const started = Date.now();
    const added = await cli(dist, ['rules', 'add', '--block', '--host', 'tracker.example', '--note', 'from the CLI', '--socket', agent.socket]);
    expect(added.err).toBe('');
    expect(added.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(4000); // an answer, not the 5 s timeout
    const id = /^added (\S+):/.exec(added.out)?.[1] as string;
    expect(id).toMatch(/^r[0-9a-f]+/);
    const change = await watcher.waitFor<Extract<ExtensionMessage, { type: 'rule-changed' }>>('the rule-changed', (m) => m.type === 'rule-changed' && m.rule.id === id);
    expect(change).toMatchObject({ op: 'added', rule: { action: 'block', endpoint: { host: 'tracker.example' } } });
    expect(change.ref).toMatch(/^rules-\d+-\d+$/); // the CLI's ref: how it knew its answer

    const listed = await cli(dist, ['rules', 'list', '--json', '--socket', agent.socket]);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.out) as Rule[]).map((r) => r.id)).toEqual([id]);

    const exported = await cli(dist, ['rules', 'export', '--socket', agent.socket]);
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.out).rules.map((r: Rule) => r.id)).toEqual([id]);

    const removed = await cli(dist, ['rules', 'rm', id, '--socket', agent.socket]);
    expect(removed.code).toBe(0);
    expect(removed.out).toContain(`removed ${id}`);
    await watcher.waitFor('the removal', (m) => m.type === 'rule-changed' && m.op === 'removed' && m.rule.id === id);
    const again = await cli(dist, ['rules', 'list', '--socket', agent.socket]);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/^no rules/);
    watcher.close();
  }, 60_000);

  it('a rule list longer than one line reaches the CLI and a new subscriber whole, in parts marked continues', async () => {
    const file = join(agent.dir, 'many.json');
    const many = Array.from({ length: 100 }, (_, i) => ({
      id: `r${String(i).padStart(12, '0')}`, action: 'allow', endpoint: { host: `host-${i}.example` }, duration: { kind: 'always' },
      enabled: true, created: 1, hits: 0, note: 'n'.repeat(1000),
    }));
    writeFileSync(file, JSON.stringify({ version: 1, policy: {}, rules: many }));
    const imported = await cli(dist, ['rules', 'import', file, '--socket', agent.socket], 60_000);
    expect(imported.code).toBe(0);
    expect(imported.out).toContain('imported 100 rules');

    const listed = await cli(dist, ['rules', 'list', '--json', '--socket', agent.socket]);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.out) as Rule[])).toHaveLength(100);

    const late = new TestClient(agent.socket);
    await late.subscribe();
    await late.waitFor('the last part of the rule list', (m) => m.type === 'rules' && m.continues === undefined);
    const parts = late.messages.filter((m): m is Extract<ExtensionMessage, { type: 'rules' }> => m.type === 'rules');
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1).every((p) => p.continues === true)).toBe(true);
    expect(parts.flatMap((p) => p.rules)).toHaveLength(100);
    // leave the agent with no rules for the next test
    for (const rule of JSON.parse(listed.out) as Rule[]) late.send({ type: 'rule-remove', id: rule.id, ref: `rm-${rule.id}` });
    await late.waitFor('every removal', () => late.messages.filter((m) => m.type === 'rule-changed' && m.op === 'removed' && m.ref?.startsWith('rm-')).length === 100, 30_000);
    late.close();
  }, 90_000);

  it('hit counts reach subscribed clients as rule-changed updates', async () => {
    const watcher = new TestClient(agent.socket);
    await watcher.subscribe();
    const added = await cli(dist, ['rules', 'add', '--allow', '--address', '127.0.0.1', '--port', String(PORT), '--socket', agent.socket]);
    expect(added.code).toBe(0);
    const id = /^added (\S+):/.exec(added.out)?.[1] as string;
    for (let i = 0; i < 3; i++) {
      const child = spawnIn(ns, cg, connectScript(PORT, 8000));
      const out = lines(child);
      expect(await out.next((l) => !l.startsWith('pid'), 15_000)).toMatch(/^connected/);
      child.stdin?.end();
    }
    const update = await watcher.waitFor<Extract<ExtensionMessage, { type: 'rule-changed' }>>('a hit update', (m) => m.type === 'rule-changed' && m.op === 'updated' && m.rule.id === id && m.rule.hits >= 3, 10_000);
    expect(update.rule.lastHit).toBeGreaterThan(0);
    // at most one update per rule per second: three hits within a second or two, not three messages each
    const updates = watcher.messages.filter((m) => m.type === 'rule-changed' && m.op === 'updated' && m.rule.id === id);
    expect(updates.length).toBeLessThanOrEqual(3);
    const listed = await cli(dist, ['rules', 'list', '--json', '--socket', agent.socket]);
    expect((JSON.parse(listed.out) as Rule[]).find((r) => r.id === id)?.hits).toBeGreaterThanOrEqual(3);
    await cli(dist, ['rules', 'rm', id, '--socket', agent.socket]);
    watcher.close();
  }, 60_000);

  it('rules policy --socket shows what the running agent applies, and where each part comes from', async () => {
    const shown = await cli(dist, ['rules', 'policy', '--socket', agent.socket]);
    expect(shown.code).toBe(0);
    // the file says block, the flag allow: the stricter applies
    expect(shown.out).toMatch(/default action\s+block\s.*rules file/);
    expect(shown.out).toMatch(/block mode\s+drop\s.*--block-mode/);
    expect(shown.out).toMatch(/allow packaged\s+on\s.*rules file/);
    const json = JSON.parse((await cli(dist, ['rules', 'policy', '--json', '--socket', agent.socket])).out) as Record<string, unknown>;
    expect(json).toMatchObject({ defaultAction: 'block', blockMode: 'drop', allowPackaged: true, blockUnpackaged: false });
    expect(readFileSync(join(agent.dir, 'rules.json'), 'utf8')).toContain('"defaultAction": "block"');
  }, 30_000);
});
