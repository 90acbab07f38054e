// The agent in a network namespace: each new connection waits for a client's verdict, a rule, or its
// deadline; every queued packet is answered exactly once.
import { describe, expect, it } from 'vitest';
import { readFileSync, readlinkSync } from 'node:fs';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { decodeLinuxToken } from '../../src/protocol/tokens.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';
import { identityFromKey } from '../../src/rules/model.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';

type RuleChanged = Extract<ExtensionMessage, { type: 'rule-changed' }>;
import {
  Netns, TestClient, buildAgent, cleanupDir, connectScript, lines, skipUnlessCapable, spawnIn, startAgent,
  startServer, waitFor,
} from './helpers.js';
import { useAgent } from './fixture.js';

const skip = skipUnlessCapable();

describe.skipIf(skip)('flowtop agent verdicts', () => {
  const PORT = 7100;
  const f = useAgent({ flags: ['--queue-num', '7301', '--timeout', '20s', '--default', 'allow'], servers: [PORT] });

  function connect(timeoutMs = 5000): { child: ChildProcess; out: ReturnType<typeof lines> } {
    const child = spawnIn(f.ns, f.cg, connectScript(PORT, timeoutMs));
    return { child, out: lines(child) };
  }

  it('announces its mode in hello', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const hello = client.messages[0]!;
    expect(hello.type).toBe('hello');
    if (hello.type !== 'hello') return;
    expect(hello.mode).toMatchObject({ failOpen: true, attribution: 'bpf-cookie', defaultAction: 'allow', timeoutMs: 20_000 });
    expect(hello.capabilities).toContain('verdicts');
    client.close();
    // and `flowtop agent --status` says the same
    const status = spawnSync(process.execPath, [join(buildAgent(), 'run-agent.mjs'), 'agent', '--status', '--socket', f.agent.socket], { encoding: 'utf8' });
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(/running \(pid \d+/);
    expect(status.stdout).toMatch(/attribution\s+bpf-cookie/);
    expect(status.stdout).toMatch(/fail-open/);
    expect(status.stdout).toMatch(/NFQUEUE 7301 via (iptables|nftables)/);
    // a packet the queue threads failed to judge, and a reject the kernel refused, are counted apart
    expect(status.stdout).toMatch(/default \d+; failed to judge 0 \(given the default\);/);
    expect(status.stdout).toMatch(/sockets the kernel would not destroy 0/);
  });

  it('holds a connection until a client allows it; the token names the process that connected', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const { child, out } = connect();
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.remote.port === PORT && f.pid === pid && !!f.pending)[0]);
    // nothing has connected yet: the SYN is held
    expect(out.all.some((l) => l.startsWith('connected'))).toBe(false);
    expect(flow.token).toBeDefined();
    const token = decodeLinuxToken(Buffer.from(flow.token!, 'base64'))!;
    expect(token.pid).toBe(pid);
    const backend = createLinuxBackend({ thread: 'inline' });
    const [attribution] = await backend.resolve([Buffer.from(flow.token!, 'base64')]);
    expect(attribution?.pid).toBe(pid);
    expect(attribution?.path).toBe(readlinkSync(`/proc/${pid}/exe`));
    expect(attribution?.trust).not.toBe('gone');
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'once' });
    await out.next((l) => l.startsWith('connected'));
    const verdict = await client.waitFor('the verdict broadcast', (m) => m.type === 'verdict' && m.id === flow.id);
    expect(verdict).toMatchObject({ verdict: { action: 'allow', by: 'user' } });
    child.stdin?.end();
    client.close();
  });

  it('block with drop: the program times out', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const { child, out } = connect(1500);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'once', blockMode: 'drop' });
    const result = await out.next((l) => !l.startsWith('pid'), 5000);
    expect(result.startsWith('timeout')).toBe(true);
    child.stdin?.end();
    client.close();
  });

  it('block with reject: the program fails at once', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const { child, out } = connect(5000);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    const sent = Date.now();
    client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'once', blockMode: 'reject' });
    const result = await out.next((l) => !l.startsWith('pid'), 5000);
    expect(result).toMatch(/^error /);
    expect(Date.now() - sent).toBeLessThan(1000);
    child.stdin?.end();
    client.close();
  });

  it('block always with reject: the rule is made before the refused program exits, and refuses its next run with no client', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    // like curl: the program exits the moment its connect is refused
    const exitOnError = connectScript(PORT, 5000);
    exitOnError[2] = exitOnError[2]!.replace("console.log('error', e.code, Date.now() - t0);", "console.log('error', e.code, Date.now() - t0); process.exit(1);");
    const firstChild = spawnIn(f.ns, f.cg, exitOnError);
    const first = { child: firstChild, out: lines(firstChild) };
    const pid = Number((await first.out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'block', remember: 'always', scope: 'endpoint', blockMode: 'reject', ref: 'always' });
    // The rule names node's code identity: the verdict waits for its executable's hash (about
    // 100 MB), which takes seconds on a loaded machine.
    const ruleOrError = client.waitFor<RuleChanged>('the identity rule', (m) => (m.type === 'rule-changed' && m.rule.identity !== undefined) || (m.type === 'error' && m.ref === 'always'), 15_000);
    ruleOrError.catch(() => undefined); // awaited below; a timeout is not an unhandled rejection meanwhile
    try {
      expect(await first.out.next((l) => !l.startsWith('pid'), 15_000)).toMatch(/^error /);
      const added = await ruleOrError;
      expect(added.type, JSON.stringify(added)).toBe('rule-changed');
      expect(added.rule).toMatchObject({ action: 'block', endpoint: { port: PORT }, duration: { kind: 'always' } });
      client.close();
      await waitFor('the client to be gone', () => client.closed);
      // the same program again, nobody watching: refused at once by the rule, not held until the deadline
      const started = Date.now();
      const second = connect(5000);
      expect(await second.out.next((l) => !l.startsWith('pid'), 5000)).toMatch(/^error /);
      expect(Date.now() - started).toBeLessThan(3000);
      second.child.stdin?.end();
    } finally {
      // Whatever failed above, the block rule must not outlive this test: later ones run node too.
      const made = await ruleOrError.catch(() => undefined);
      client.close();
      if (made?.type === 'rule-changed') {
        const cleaner = new TestClient(f.agent.socket);
        await cleaner.subscribe();
        cleaner.send({ type: 'rule-remove', id: made.rule.id });
        await cleaner.waitFor('rule removed', (m) => m.type === 'rule-changed' && m.op === 'removed');
        cleaner.close();
      }
    }
  });

  it('a remembered rule decides later connections with no client connected', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    client.send({ type: 'rule-add', rule: { action: 'allow', endpoint: { port: PORT }, protocol: 'tcp', duration: { kind: 'always' } } });
    const added = await client.waitFor<Extract<import('../../src/protocol/messages.js').ExtensionMessage, { type: 'rule-changed' }>>('rule-changed', (m) => m.type === 'rule-changed');
    client.close();
    await waitFor('the client to be gone', () => client.closed);
    const { child, out } = connect(3000);
    const result = await out.next((l) => !l.startsWith('pid'), 5000);
    expect(result).toMatch(/^connected/);
    child.stdin?.end();
    // a watching client sees the rule's verdict on the flow
    const watcher = new TestClient(f.agent.socket);
    await watcher.subscribe();
    const second = connect(3000);
    const pid = Number((await second.out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    expect(await second.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    const flow = await waitFor('the decided flow', () => watcher.flows((f) => f.pid === pid)[0]);
    expect(flow.verdict).toMatchObject({ action: 'allow', by: 'rule', ruleId: added.rule.id });
    second.child.stdin?.end();
    // the worker's hits reach the rule (batched about once a second)
    let asked = 0;
    const hit = await waitFor('the rule hits', () => {
      if (asked++ % 10 === 0) watcher.send({ type: 'rules-list' });
      const latest = [...watcher.messages].reverse().find((m) => m.type === 'rules');
      const rule = latest?.type === 'rules' ? latest.rules.find((r) => r.id === added.rule.id) : undefined;
      return rule && rule.hits >= 2 ? rule : undefined;
    }, 5000);
    expect(hit.lastHit).toBeGreaterThan(0);
    watcher.send({ type: 'rule-remove', id: added.rule.id });
    await watcher.waitFor('rule removed', (m) => m.type === 'rule-changed' && m.op === 'removed');
    watcher.close();
  });

  it('remember process makes a token rule; an identity rule decides in the agent with no client', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const first = connect();
    const pid = Number((await first.out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const flow = await waitFor('the pending flow', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: flow.id, action: 'allow', remember: 'process' });
    expect(await first.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    const tokenRule = await client.waitFor<RuleChanged>('the token rule', (m) => m.type === 'rule-changed' && m.rule.duration.kind === 'process');
    expect(tokenRule.rule.duration).toEqual({ kind: 'process', token: flow.token });
    // the executable's code identity, as the agent's attribution computes it
    const [attribution] = await createLinuxBackend({ thread: 'inline' }).resolve([Buffer.from(flow.token!, 'base64')]);
    first.child.stdin?.end();
    const identity = attribution?.identity ? identityFromKey(attribution.identity) : undefined;
    expect(identity, `identity of ${attribution?.path}: ${attribution?.reason?.message}`).toBeDefined();
    client.send({ type: 'rule-add', rule: { action: 'allow', identity: identity!, protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' } } });
    const identityRule = await client.waitFor<RuleChanged>('the identity rule', (m) => m.type === 'rule-changed' && m.rule.identity !== undefined);
    // another process running the same executable: decided by the identity rule, nobody asked
    const second = connect(5000);
    const pid2 = Number((await second.out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    expect(await second.out.next((l) => !l.startsWith('pid'))).toMatch(/^connected/);
    // decided on the main thread (a pending flow, then its verdict) or, the identity being known by
    // now, in the queue thread (the flow arrives with its verdict)
    const verdict = await waitFor('the rule verdict', () => {
      const f = client.flows((x) => x.pid === pid2)[0];
      if (f?.verdict) return f.verdict;
      const m = f ? client.messages.find((x) => x.type === 'verdict' && x.id === f.id) : undefined;
      return m?.type === 'verdict' ? m.verdict : undefined;
    });
    expect(verdict).toMatchObject({ action: 'allow', by: 'rule', ruleId: identityRule.rule.id });
    second.child.stdin?.end();
    for (const id of [tokenRule.rule.id, identityRule.rule.id]) client.send({ type: 'rule-remove', id });
    await waitFor('rules removed', () => client.messages.filter((m) => m.type === 'rule-changed' && m.op === 'removed').length === 2);
    client.close();
  });

  it('200 concurrent connections: every one judged, none twice', async () => {
    const client = new TestClient(f.agent.socket);
    await client.subscribe();
    const seen = new Set<string>();
    const answered = new Set<string>();
    let burstPid = -1;
    const timer = setInterval(() => {
      for (const f of client.flows((x) => !!x.pending && x.pid === burstPid)) {
        if (seen.has(f.id)) continue;
        seen.add(f.id);
        client.send({ type: 'verdict', id: f.id, action: 'allow', remember: 'once' });
      }
    }, 5);
    const child = spawnIn(f.ns, f.cg, [process.execPath, '-e', `
      console.log('pid', process.pid);
      const net = require('net'); let ok = 0, bad = 0;
      for (let i = 0; i < 200; i++) {
        const s = net.connect(${PORT}, '127.0.0.1');
        s.on('connect', () => { ok++; s.destroy(); done(); });
        s.on('error', () => { bad++; done(); });
      }
      function done() { if (ok + bad === 200) console.log('done', ok, bad); }
    `]);
    const out = lines(child);
    burstPid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const done = await out.next((l) => l.startsWith('done'), 20_000);
    clearInterval(timer);
    expect(done).toBe('done 200 0');
    expect(seen.size).toBe(200);
    // The program may print `done` before the verdicts reach this client: the kernel is answered
    // first, the clients at the end of the agent's event-loop turn.
    await waitFor('a verdict message for every flow', () => {
      const ids = client.messages.flatMap((m) => (m.type === 'verdict' && seen.has(m.id) ? [m.id] : []));
      return new Set(ids).size === seen.size;
    }, 5000);
    for (const m of client.messages) if (m.type === 'verdict' && seen.has(m.id)) {
      expect(answered.has(m.id)).toBe(false); // one verdict per flow
      answered.add(m.id);
    }
    // the agent's own counters: each queued packet decided once
    const status = await waitFor('status to catch up', () => {
      let s;
      try {
        s = JSON.parse(readFileSync(`${f.agent.socket}.status.json`, 'utf8'));
      } catch {
        return undefined; // not written yet
      }
      const c = s.counters;
      return c.queued >= 200 && c.pending === 0 && c.queued === c.decidedByRule + c.decidedByUser + c.decidedByDefault ? s : undefined;
    }, 5000);
    expect(status.counters.queued).toBeGreaterThanOrEqual(200);
    client.close();
  });

  it('a flow nobody answers gets the default when its deadline passes', async () => {
    // its own namespace: a second agent in the first one would replace the first agent's rules
    const ns2 = new Netns();
    const server2 = await startServer(ns2, PORT);
    const other = await startAgent(ns2, f.cg, ['--queue-num', '7302', '--timeout', '1s', '--default', 'block', '--block-mode', 'reject']);
    try {
      const watcher = new TestClient(other.socket);
      await watcher.subscribe();
      const started = Date.now();
      const child = spawnIn(ns2, f.cg, connectScript(PORT, 5000));
      const out = lines(child);
      const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
      const flow = await waitFor('the pending flow', () => watcher.flows((f) => f.pid === pid && !!f.pending)[0]);
      expect(flow.pending!.deadline - flow.time).toBeGreaterThanOrEqual(900);
      const verdict = await watcher.waitFor('the default verdict', (m) => m.type === 'verdict' && m.id === flow.id, 5000);
      expect(verdict).toMatchObject({ verdict: { action: 'block', by: 'default' } });
      expect(await out.next((l) => !l.startsWith('pid'))).toMatch(/^error/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      child.stdin?.end();
      watcher.close();
    } finally {
      await other.stop();
      cleanupDir(other.dir);
      server2.kill();
      ns2.delete();
    }
  });
});
