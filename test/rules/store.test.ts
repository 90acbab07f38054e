import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { parseRulesDocument, serializeRulesDocument } from '../../src/rules/document.js';
import { RuleStore } from '../../src/rules/store.js';
import { bundleFixture, exited, tempDir } from './helpers.js';

const dirs: string[] = [];
function rulesPath(): string {
  const dir = tempDir();
  dirs.push(dir);
  return join(dir, 'rules.json');
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const HASH = 'c0ffee'.padEnd(64, '0');
const TOKEN = Buffer.from('instance').toString('base64');

async function seeded(path: string): Promise<RuleStore> {
  const store = await RuleStore.open(path);
  await store.add({ action: 'allow', identity: { kind: 'sha256', value: HASH, label: 'curl' }, endpoint: { domain: 'example.com', port: 443 }, protocol: 'tcp', duration: { kind: 'always' }, note: 'web' }, 1_000);
  await store.add({ action: 'block', blockMode: 'reject', endpoint: { cidr: '10.0.0.0/8' }, direction: 'outbound', duration: { kind: 'until', until: 9_000_000_000_000 } }, 2_000);
  await store.add({ action: 'allow', identity: { kind: 'path', value: '/opt/tool/bin/tool' }, endpoint: { portRange: [8000, 8100] }, duration: { kind: 'always' }, enabled: false }, 3_000);
  return store;
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('RuleStore file', () => {
  it('starts empty without a file, creates it on the first change, and reads back the same rules', async () => {
    const path = rulesPath();
    const store = await seeded(path);
    const text = readFileSync(path, 'utf8');
    const parsed = parseRulesDocument(JSON.parse(text));
    expect(parsed.ok).toBe(true);
    expect(JSON.parse(text).version).toBe(1);
    const again = await RuleStore.open(path);
    expect(again.rules()).toEqual(store.rules());
    expect(again.rules().map((r) => r.note ?? r.action)).toEqual(['web', 'block', 'allow']);
  });

  it('concurrent changes are serialised: none is lost', async () => {
    const path = rulesPath();
    const store = await RuleStore.open(path);
    await Promise.all(Array.from({ length: 25 }, (_, i) => store.add({ action: 'block', endpoint: { port: 2000 + i }, duration: { kind: 'always' } })));
    const removed = await Promise.all([store.remove(store.rules()[0]!.id), store.add({ action: 'allow', duration: { kind: 'always' } })]);
    expect(removed[0]).toBeDefined();
    const onDisk = (await RuleStore.open(path)).rules();
    expect(onDisk).toHaveLength(25);
    expect(new Set(onDisk.map((r) => r.id)).size).toBe(25);
  });

  it('a write that fails is reported and leaves the store as it was', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir, 'etc', 'rules.json');
    const store = await seeded(path);
    // The folder disappears and a plain file takes its place: the next write cannot happen.
    rmSync(join(dir, 'etc'), { recursive: true });
    writeFileSync(join(dir, 'etc'), 'x');
    const error = await store.add({ action: 'block', duration: { kind: 'always' } }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toMatch(/cannot write the rules file .*etc\/rules.json/);
    expect(store.rules()).toHaveLength(3);
  });

  it('keeps a once rule in memory only and uses it up at its first hit', async () => {
    const path = rulesPath();
    const store = await RuleStore.open(path);
    await store.add({ action: 'allow', duration: { kind: 'always' }, note: 'kept' });
    const before = readFileSync(path, 'utf8');
    const once = await store.add({ action: 'block', endpoint: { port: 25 }, duration: { kind: 'once' } });
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(store.rules().map((r) => r.id)).toContain(once.id);
    const facts = { protocol: 'tcp' as const, direction: 'outbound' as const, remoteAddress: '192.0.2.25', remotePort: 25 };
    expect(store.match(facts, 1)).toMatchObject({ id: once.id, hits: 1 });
    expect(store.match(facts, 2)?.note).toBe('kept');
    expect(store.rules().map((r) => r.id)).not.toContain(once.id);
    await store.close();
    expect(readFileSync(path, 'utf8')).not.toContain(once.id);
  });

  it('keeps a session rule in memory only: it decides flows, is listed, and is gone after a restart', async () => {
    const path = rulesPath();
    const store = await RuleStore.open(path);
    await store.add({ action: 'allow', duration: { kind: 'always' }, note: 'kept' });
    const before = readFileSync(path, 'utf8');
    const session = await store.add({ action: 'block', endpoint: { port: 25 }, duration: { kind: 'always' }, session: true });
    expect(session.session).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe(before);
    const facts = { protocol: 'tcp' as const, direction: 'outbound' as const, remoteAddress: '192.0.2.25', remotePort: 25 };
    expect(store.match(facts, 1)?.id).toBe(session.id);
    expect(store.match(facts, 2)?.id).toBe(session.id); // not used up, unlike once
    await store.close();
    expect(readFileSync(path, 'utf8')).not.toContain(session.id);
    const restarted = await RuleStore.open(path);
    expect(restarted.rules().map((r) => r.id)).not.toContain(session.id);
    expect(restarted.match(facts, 3)?.note).toBe('kept');
    // A rules file never holds one.
    expect(parseRulesDocument({ version: 1, rules: [{ ...session }] })).toMatchObject({ ok: false, problems: [expect.stringContaining('session')] });
  });

  it('refuses invalid specs', async () => {
    const store = await RuleStore.open(rulesPath());
    await expect(store.add({ action: 'block', duration: { kind: 'always' }, endpoint: { cidr: 'nope' } })).rejects.toThrow(/endpoint.cidr/);
  });

  it('removes the rules of an ended process instance and expired rules', async () => {
    const store = await RuleStore.open(rulesPath());
    await store.add({ action: 'allow', duration: { kind: 'process', token: TOKEN } });
    await store.add({ action: 'allow', duration: { kind: 'until', until: 5_000 } });
    await store.add({ action: 'allow', duration: { kind: 'always' } });
    expect((await store.removeProcessRules(TOKEN)).map((r) => r.duration.kind)).toEqual(['process']);
    expect((await store.removeExpired(5_000)).map((r) => r.duration.kind)).toEqual(['until']);
    expect((await RuleStore.open(store.path)).rules().map((r) => r.duration.kind)).toEqual(['always']);
  });
});

describe('hit counters', () => {
  it('are counted in memory and written later, not on every hit', async () => {
    const path = rulesPath();
    const store = await RuleStore.open(path, { hitFlushMs: 60_000 });
    const rule = await store.add({ action: 'allow', endpoint: { port: 53 }, protocol: 'udp', duration: { kind: 'always' } });
    const before = readFileSync(path, 'utf8');
    const facts = { protocol: 'udp' as const, direction: 'outbound' as const, remoteAddress: '9.9.9.9', remotePort: 53 };
    for (let i = 0; i < 1000; i++) expect(store.match(facts, 10_000 + i)?.id).toBe(rule.id);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(store.get(rule.id)).toMatchObject({ hits: 1000, lastHit: 10_999 });
    await store.close();
    expect((await RuleStore.open(path)).get(rule.id)).toMatchObject({ hits: 1000, lastHit: 10_999 });
  });

  it('are flushed by the timer', async () => {
    const path = rulesPath();
    const store = await RuleStore.open(path, { hitFlushMs: 20 });
    const rule = await store.add({ action: 'allow', duration: { kind: 'always' } });
    store.recordHit(rule.id, 42);
    await until(() => readFileSync(path, 'utf8').includes('"lastHit": 42'));
    expect(JSON.parse(readFileSync(path, 'utf8')).rules[0].hits).toBe(1);
    await store.close();
  });
});

describe('a corrupt file is refused and left byte for byte untouched', () => {
  const valid = serializeRulesDocument({ version: 1, policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false }, rules: [] });
  it.each([
    ['truncated JSON', valid.slice(0, 30), /is not valid JSON/],
    ['an empty file', '', /is empty/],
    ['a bad rule', JSON.stringify({ version: 1, rules: [{ id: 'r1', action: 'allow', duration: { kind: 'always' }, created: 1, hits: 0 }, { id: 'r2', action: 'allow', duration: { kind: 'always' }, created: 1, hits: 0, endpoint: { cidr: '10.0.0.0/99' } }] }), /rules\[1\] \(id "r2"\) endpoint.cidr/],
    ['a newer version', JSON.stringify({ version: 7, rules: [] }), /written by a newer flowtop/],
    ['not an object', '[1, 2, 3]', /must be a JSON object/],
  ])('%s', async (_name, content, message) => {
    const path = rulesPath();
    writeFileSync(path, content);
    const bytes = readFileSync(path);
    const error = await RuleStore.open(path).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toMatch(message);
    expect((error as UserError).message).toContain(path);
    expect((error as UserError).nextStep).toContain('left untouched');
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(readdirSync(join(path, '..'))).toEqual(['rules.json']);
  });
});

describe('atomic write, with a real writer process killed at the worst moment', () => {
  let writer = '';
  beforeAll(async () => {
    writer = await bundleFixture('test/rules/fixtures/rules-writer.ts', 'rules-writer');
  });

  it('a writer killed between fsync and rename leaves the old file intact; the next writer cleans up', async () => {
    const path = rulesPath();
    const store = await seeded(path);
    const before = readFileSync(path);
    const child = spawn(process.execPath, [writer, path, 'crash-before-rename'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const { signal } = await exited(child);
    expect(signal).toBe('SIGKILL');
    // The child got as far as a complete, synced temp file: the crash really came between write and rename.
    const temp = /^synced (.+)$/m.exec(out)?.[1];
    expect(temp).toBeDefined();
    const tempDoc = parseRulesDocument(JSON.parse(readFileSync(temp!, 'utf8')));
    expect(tempDoc.ok && tempDoc.value.rules).toHaveLength(4);
    // The rules file is the old one, byte for byte, and loads.
    expect(readFileSync(path).equals(before)).toBe(true);
    expect((await RuleStore.open(path)).rules()).toEqual(store.rules());
    // The next write removes the dead writer's temp file.
    await (await RuleStore.open(path)).add({ action: 'allow', duration: { kind: 'always' } });
    expect(readdirSync(join(path, '..'))).toEqual(['rules.json']);
    expect((await RuleStore.open(path)).rules()).toHaveLength(4);
  });

  it('a reader never sees a partial file while another process rewrites it', async () => {
    const path = rulesPath();
    await seeded(path);
    const child = spawn(process.execPath, [writer, path, 'add', '150'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const done = exited(child);
    let finished = false;
    void done.then(() => (finished = true));
    let reads = 0;
    const counts = new Set<number>();
    while (!finished) {
      const parsed = parseRulesDocument(JSON.parse(readFileSync(path, 'utf8')));
      expect(parsed.ok).toBe(true);
      if (parsed.ok) counts.add(parsed.value.rules.length);
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await done).code).toBe(0);
    expect((await RuleStore.open(path)).rules()).toHaveLength(153);
    expect(reads).toBeGreaterThan(10);
    expect(counts.size).toBeGreaterThan(1); // the reads really overlapped the rewrites
  });
});

describe('export → import round trip', () => {
  it('a document exported from one store imports into an empty store as the same rules; importing again adds nothing', async () => {
    const source = await seeded(rulesPath());
    source.recordHit(source.rules()[0]!.id, 77);
    const exported = serializeRulesDocument(source.document());
    const parsed = parseRulesDocument(JSON.parse(exported));
    if (!parsed.ok) throw new Error(parsed.problems.join('\n'));
    const target = await RuleStore.open(rulesPath());
    const first = await target.importRules(parsed.value.rules);
    expect(first.map((o) => o.result)).toEqual(['added', 'added', 'added']);
    expect(target.rules()).toEqual(source.rules());
    expect((await RuleStore.open(target.path)).rules()).toEqual(source.rules());
    const second = await target.importRules(parsed.value.rules);
    expect(second.map((o) => o.result)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    expect(target.rules()).toHaveLength(3);
    await source.close();
  });

  it('an imported rule whose id is taken gets a new id', async () => {
    const target = await seeded(rulesPath());
    const taken = target.rules()[0]!;
    const [outcome] = await target.importRules([{ ...taken, endpoint: { port: 22 }, identity: undefined }]);
    expect(outcome?.result).toBe('added');
    expect(outcome?.rule.id).not.toBe(taken.id);
  });

  it('an imported rule named like a fleet rule (fleet:…) gets a local id: it could not be removed locally otherwise', async () => {
    const target = await seeded(rulesPath());
    const base = target.rules()[0]!;
    const [outcome] = await target.importRules([{ ...base, id: 'fleet:all.x', endpoint: { port: 2222 }, identity: undefined }]);
    expect(outcome?.result).toBe('added');
    expect(outcome?.rule.id).toMatch(/^r[0-9a-f]{12}$/);
  });
});
