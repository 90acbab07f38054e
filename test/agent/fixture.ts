// A fresh namespace and test cgroup for a describe block (useNamespace), or one agent in one
// (useAgent): created before its tests, removed after them, and the host's own firewall rules checked
// untouched.
import { afterAll, beforeAll, expect } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Rule } from '../../src/protocol/messages.js';
import type { Policy } from '../../src/rules/policy.js';
import {
  Netns, TestCgroup, buildAgent, cleanupDir, hostRules, removeBuild, startAgent, startServer, type RunningAgent,
} from './helpers.js';

export interface NamespaceFixture {
  ns: Netns;
  cg: TestCgroup;
}

/** A fresh namespace and test cgroup for a describe block, with local TCP servers in it: made before
 *  its tests, removed after them, the host's own firewall rules checked untouched. The block's own
 *  afterAll hooks (registered after this) run first (vitest runs after-hooks last-registered first),
 *  so agents they stop are gone before the namespace is. */
export function useNamespace(options: {
  /** Local TCP servers started in the namespace. */
  servers?: number[];
  /** Runs in the namespace after the servers (e.g. more servers); returns children to kill. */
  setup?: (ns: Netns) => Promise<ChildProcess[]>;
} = {}): NamespaceFixture {
  const f = {} as NamespaceFixture;
  const children: ChildProcess[] = [];
  let before = '';
  beforeAll(async () => {
    before = hostRules();
    buildAgent();
    f.ns = new Netns();
    f.cg = new TestCgroup();
    for (const port of options.servers ?? []) children.push(await startServer(f.ns, port));
    if (options.setup) children.push(...(await options.setup(f.ns)));
  }, 60_000);
  afterAll(() => {
    for (const c of children) c.kill();
    f.ns?.delete();
    f.cg?.delete();
    removeBuild();
    expect(hostRules()).toBe(before);
  });
  return f;
}

export interface AgentFixture extends NamespaceFixture {
  agent: RunningAgent;
}

/** One agent in a namespace of its own (useNamespace), started with `flags` before the block's tests. */
export function useAgent(options: {
  flags: string[];
  /** Local TCP servers started in the namespace before the agent. */
  servers?: number[];
  /** Runs in the namespace before the agent starts (e.g. more servers); returns children to kill. */
  setup?: (ns: Netns) => Promise<ChildProcess[]>;
  /** The rules file the agent starts with (default: none, so it starts with no rules). */
  rulesFile?: { policy: Policy; rules: Rule[] };
}): AgentFixture {
  const space = useNamespace({ ...(options.servers ? { servers: options.servers } : {}), ...(options.setup ? { setup: options.setup } : {}) });
  const f = {} as AgentFixture;
  beforeAll(async () => {
    f.ns = space.ns;
    f.cg = space.cg;
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-agent-'));
    if (options.rulesFile) writeFileSync(join(dir, 'rules.json'), JSON.stringify({ version: 1, ...options.rulesFile }));
    f.agent = await startAgent(f.ns, f.cg, options.flags, dir);
  }, 60_000);
  afterAll(async () => {
    await f.agent?.stop();
    if (f.agent) cleanupDir(f.agent.dir);
  });
  return f;
}
