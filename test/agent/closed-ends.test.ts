// A TCP flow ends when its socket closes, not at the next byte poll: the agent reads the sockets that
// closed (the BPF recorder's close counters) ten times a second, so a short connection's end and its
// final bytes reach the clients (and the history) within a fraction of a second. Here the byte poll
// is a minute apart: every end seen comes from the closes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { TestClient, buildAgent, cleanupDir, lines, skipUnlessCapable, spawnIn, startScriptedAgent, waitFor } from './helpers.js';
import { useNamespace } from './fixture.js';

const skip = skipUnlessCapable();
const PORT = 7160;

// The agent as the CLI builds it, with the byte poll a minute apart.
const RUNNER = `
import { Agent } from './agent/agent.js';
import { linuxAgentIo } from './agent/linux-io.js';
import { RuleStore } from './rules/store.js';
import { storeRuleBook } from './agent/rule-book.js';
const [socket, rules, cgroup, queue] = process.argv.slice(2);
const store = await RuleStore.open(rules, { owner: 'agent' });
const agent = new Agent({
  socketPath: socket, queueNum: Number(queue), defaultAction: 'allow', timeoutMs: 1500, failOpen: true, blockMode: 'drop',
  inbound: false, rules: storeRuleBook(store), trafficIntervalMs: 60_000,
}, linuxAgentIo({ cgroup }));
await agent.start();
process.stderr.write('ready on ' + socket + '\\n');
process.once('SIGTERM', async () => {
  await agent.stop();
  await store.close();
  process.exit(0);
});
`;

/** Reads what each connection sends, then closes its end (the client's socket goes on to CLOSE). */
const SERVER = `require('net').createServer((c) => { c.on('error', () => {}); c.resume(); c.on('end', () => c.end()); }).listen(${PORT}, '127.0.0.1', () => console.log('ready'));`;

/** Opens `count` connections one after the other; on the i-th sends 100 × (i + 1) bytes, waits for the
 *  server's close, closes, and prints "closed LOCALPORT MS" (MS: the wall clock at the close). */
const CLIENT = (count: number): string[] => [process.execPath, '-e', `
  const net = require('net');
  (async () => {
    for (let i = 0; i < ${count}; i++) {
      await new Promise((done) => {
        let port;
        const s = net.connect(${PORT}, '127.0.0.1', () => { port = s.localPort; s.end(Buffer.alloc(100 * (i + 1), 1)); });
        s.resume();
        s.on('close', () => { console.log('closed', port, Date.now()); done(); });
        s.on('error', () => {});
      });
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log('done');
  })();
`];

describe.skipIf(skip)('TCP flows end as their sockets close', () => {
  // the namespace with the server, made and removed around the block (host rules checked untouched)
  const f = useNamespace({ setup: async (ns) => {
    const server = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await lines(server).next((l) => l === 'ready');
    return [server];
  } });
  let dir = '';
  let agent: Awaited<ReturnType<typeof startScriptedAgent>> | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({
      version: 1,
      policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false },
      rules: [{ id: 'r-port', action: 'allow', protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true }],
    }));
    agent = await startScriptedAgent(f.ns, buildAgent(), { name: 'run-closed-ends-agent.mjs', source: RUNNER }, { dir, cgroup: f.cg.path, queue: 7393 });
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    if (dir) cleanupDir(dir);
  });

  it('each of 10 short connections ends at a watching client within a second of its close, with all its bytes', async () => {
    const client = new TestClient(join(dir, 'agent.sock'));
    await client.subscribe();
    const child = spawnIn(f.ns, f.cg, CLIENT(10));
    const out = lines(child);
    const closes: Array<{ port: number; at: number }> = [];
    for (let line = await out.next(() => true, 20_000); line !== 'done'; line = await out.next(() => true, 20_000)) {
      const [, port, at] = line.split(' ');
      closes.push({ port: Number(port), at: Number(at) });
    }
    expect(closes).toHaveLength(10);
    for (const [i, close] of closes.entries()) {
      const flow = await waitFor(`the flow from port ${close.port}`, () => client.flows((f) => f.local.port === close.port && f.remote.port === PORT)[0]);
      const end = await client.waitFor<Extract<ExtensionMessage, { type: 'end' }>>(`the end of the flow from port ${close.port}`, (m) => m.type === 'end' && m.id === flow.id, 5000);
      expect(end.reason).toMatch(/closed/);
      // all its bytes: 100 × (i + 1) sent, none received
      const counters = client.messages.flatMap((m) => (m.type === 'bytes' ? m.counters.filter((c) => c.id === flow.id) : []));
      expect(counters.at(-1)).toMatchObject({ tx: 100 * (i + 1), rx: 0 });
      // the end message carries the agent's time of the end: within a second of the close
      expect(end.time - close.at).toBeLessThan(1000);
    }
    client.close();
  }, 60_000);
});
