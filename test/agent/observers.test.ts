// The agent's observer seam, on the real agent in a namespace: an observer hears every flow (decided by
// a rule in a queue thread, pending, then decided) with its verdict, byte counters and end, and rule
// changes — with no client connected — and a client that subscribes hears the same events; an
// observer that throws neither stops the agent nor the other observers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExtensionMessage, FlowRecord } from '../../src/protocol/messages.js';
import type { AgentEvent } from '../../src/agent/observers.js';
import {
  Netns, TestCgroup, TestClient, buildAgent, cleanupDir, connectScript, hostRules, lines, removeBuild, skipUnlessCapable, spawnIn, startScriptedAgent,
  startServer, waitFor,
} from './helpers.js';

const skip = skipUnlessCapable();

// The agent as the CLI builds it, plus two observers: one writes each event to stdout as a JSON line,
// one throws on every event.
const RUNNER = `
import { Agent } from './agent/agent.js';
import { linuxAgentIo } from './agent/linux-io.js';
import { RuleStore } from './rules/store.js';
import { storeRuleBook } from './agent/rule-book.js';
import { createLinuxBackend } from './native/linux/backend.js';
const [socket, rules, cgroup, queue] = process.argv.slice(2);
const store = await RuleStore.open(rules, { owner: 'agent' });
const attribution = createLinuxBackend();
const agent = new Agent({
  socketPath: socket, queueNum: Number(queue), defaultAction: 'allow', timeoutMs: 1500, failOpen: true, blockMode: 'drop',
  inbound: false, rules: storeRuleBook(store), attribution, trafficIntervalMs: 200,
  observers: [
    { observe: () => { throw new Error('this observer always fails'); } },
    { observe: (e) => process.stdout.write(JSON.stringify(e) + '\\n') },
  ],
}, linuxAgentIo({ cgroup }));
await agent.start();
process.stderr.write('ready on ' + socket + '\\n');
process.once('SIGTERM', async () => {
  await agent.stop();
  await store.close();
  attribution.close?.();
  process.exit(0);
});
`;

describe.skipIf(skip)('agent observers', () => {
  const RULED = 7150;
  const ASKED = 7151;
  const BLOCKED = 7152;
  let ns: Netns;
  let cg: TestCgroup;
  let dir: string;
  let agent: Awaited<ReturnType<typeof startScriptedAgent>> | undefined;
  const events: AgentEvent[] = [];
  const servers: ChildProcess[] = [];
  let before = '';

  beforeAll(async () => {
    before = hostRules();
    const dist = buildAgent();
    ns = new Netns();
    cg = new TestCgroup();
    for (const port of [RULED, ASKED, BLOCKED]) servers.push(await startServer(ns, port));
    dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({
      version: 1,
      policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false },
      rules: [
        { id: 'r-ruled', action: 'allow', protocol: 'tcp', endpoint: { port: RULED }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true },
        { id: 'r-blocked', action: 'block', protocol: 'tcp', endpoint: { port: BLOCKED }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true },
      ],
    }));
    agent = await startScriptedAgent(ns, dist, { name: 'run-observed-agent.mjs', source: RUNNER }, { dir, cgroup: cg.path, queue: 7391 },
      (line) => events.push(JSON.parse(line) as AgentEvent));
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    for (const s of servers) s.kill();
    ns?.delete();
    cg?.delete();
    if (dir) cleanupDir(dir);
    removeBuild();
    expect(hostRules()).toBe(before);
  });

  const flowsOf = (list: readonly (AgentEvent | ExtensionMessage)[], pred: (f: FlowRecord) => boolean): FlowRecord[] =>
    list.flatMap((e) => (e.type === 'flow' && pred(e.flow) ? [e.flow] : []));

  async function connectAndClose(port: number): Promise<number> {
    const child = spawnIn(ns, cg, connectScript(port));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    await out.next((l) => l.startsWith('connected'));
    child.stdin?.end();
    return pid;
  }

  it('hears a flow a queue thread allowed by rule, with no client connected, then its bytes and its end', async () => {
    const pid = await connectAndClose(RULED);
    const flow = await waitFor('the ruled flow', () => flowsOf(events, (f) => f.pid === pid && f.remote.port === RULED)[0]);
    expect(flow.verdict).toMatchObject({ action: 'allow', by: 'rule', ruleId: 'r-ruled' });
    expect(flow.pending).toBeUndefined();
    const ended = await waitFor('its end', () => events.find((e) => e.type === 'end' && e.id === flow.id));
    expect(ended).toMatchObject({ type: 'end' });
  });

  it('hears a flow a queue thread blocked by rule, with no client connected', async () => {
    const child = spawnIn(ns, cg, connectScript(BLOCKED, 800));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    expect(await out.next((l) => !l.startsWith('pid'))).toMatch(/^timeout/);
    child.stdin?.end();
    const flow = await waitFor('the blocked flow', () => flowsOf(events, (f) => f.pid === pid && f.remote.port === BLOCKED)[0]);
    expect(flow.verdict).toMatchObject({ action: 'block', by: 'rule', ruleId: 'r-blocked' });
  });

  it('hears a pending flow, then the verdict its deadline gave', async () => {
    const pid = await connectAndClose(ASKED);
    const flow = await waitFor('the pending flow', () => flowsOf(events, (f) => f.pid === pid && f.remote.port === ASKED)[0]);
    expect(flow.pending).toBeDefined();
    // the program connected once its packet was answered; the event may still be on its way
    const verdict = await waitFor('its verdict', () => events.find((e) => e.type === 'verdict' && e.id === flow.id));
    expect(verdict).toMatchObject({ verdict: { action: 'allow', by: 'default' } });
    // the pending flow came first
    expect(events.indexOf(events.find((e) => e.type === 'flow' && e.flow.id === flow.id)!)).toBeLessThan(events.indexOf(verdict!));
  });

  it('a subscribed client and the observer hear the same flows, verdicts and rule changes', async () => {
    const client = new TestClient(join(dir, 'agent.sock'));
    await client.subscribe();
    const from = events.length;
    const child = spawnIn(ns, cg, connectScript(ASKED));
    const out = lines(child);
    const pid = Number((await out.next((l) => l.startsWith('pid'))).split(' ')[1]);
    const pending = await waitFor('the pending flow at the client', () => client.flows((f) => f.pid === pid && !!f.pending)[0]);
    client.send({ type: 'verdict', id: pending.id, action: 'block', remember: 'once', blockMode: 'drop' });
    await client.waitFor('the verdict', (m) => m.type === 'verdict' && m.id === pending.id);
    client.send({ type: 'rule-add', rule: { action: 'block', protocol: 'udp', endpoint: { port: 9 }, duration: { kind: 'always' } }, ref: 'r1' });
    const changed = await client.waitFor<Extract<ExtensionMessage, { type: 'rule-changed' }>>('the added rule', (m) => m.type === 'rule-changed' && m.op === 'added');
    const heard = await waitFor('the observer to hear the rule', () => events.slice(from).find((e) => e.type === 'rule-changed' && e.rule.id === changed.rule.id));
    expect(heard).toMatchObject({ op: 'added', rule: { action: 'block' } });
    expect(events.slice(from).find((e) => e.type === 'verdict' && e.id === pending.id)).toMatchObject({ verdict: { action: 'block', by: 'user' } });
    expect(flowsOf(events.slice(from), (f) => f.id === pending.id)[0]?.pending).toBeDefined();
    child.stdin?.end();
    client.close();
  });

  it('an observer that throws is logged once and stops nothing', () => {
    expect(agent!.stderr.filter((l) => l.includes('observer 1 failed')).length).toBe(1);
    expect(agent!.proc.exitCode).toBeNull();
  });
});
