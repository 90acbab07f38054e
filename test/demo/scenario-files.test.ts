// The shipped scenarios: each parses with zero problems, shows what the demo promises, and matches
// what its generator produces (so a hand edit and the generator never drift apart).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedScenarios } from '../../demo/generate/index.js';
import { formatProblem, parseScenario, type Scenario } from '../../src/demo/scenario.js';
import { listScenarioNames, scenariosDir } from '../../src/demo/scenario-files.js';

const dir = scenariosDir();

function load(name: string): Scenario {
  const file = join(dir, `${name}.ndjson`);
  const { scenario, problems } = parseScenario(readFileSync(file, 'utf8'), file);
  expect(problems.map(formatProblem)).toEqual([]);
  return scenario;
}

describe('shipped scenarios', () => {
  it('are generated from demo/generate (set FLOWTOP_WRITE_SCENARIOS=1 to rewrite them)', () => {
    for (const [file, text] of generatedScenarios()) {
      const path = join(dir, file);
      if (process.env.FLOWTOP_WRITE_SCENARIOS === '1') writeFileSync(path, text);
      expect(readFileSync(path, 'utf8'), `${file} differs from its generator`).toBe(text);
    }
  });

  it('every file parses with zero problems', () => {
    const names = listScenarioNames();
    expect(names).toEqual(expect.arrayContaining(['default', 'linux', 'burst']));
    for (const name of names) load(name);
  });

  it('the default scenario shows what the seeds are about', () => {
    const s = load('default');
    const attributions = [...s.attributions.values()];
    const flows = s.events.flatMap((e) => (e.kind === 'flow' ? [e.flow] : []));
    // Helper processes acting for an app: appToken differs from token.
    const viaHelper = flows.find((f) => f.appToken !== undefined && f.appToken !== f.token && s.attributions.get(f.appToken)?.name === 'Safari');
    expect(s.attributions.get(viaHelper?.token ?? '')?.name).toBe('com.apple.WebKit.Networking');
    // EPERM 100001 from /usr/libexec → insecure with a reason; ESRCH 100003 → gone.
    const eperm = attributions.filter((a) => a.trust === 'insecure' && a.reason?.code === 100_001);
    expect(eperm.map((a) => a.path)).toEqual(expect.arrayContaining(['/usr/libexec/trustd', '/usr/libexec/nsurlsessiond']));
    expect(attributions.some((a) => a.trust === 'gone' && a.reason?.code === 100_003)).toBe(true);
    expect(attributions.some((a) => a.name === 'curl')).toBe(true);
    expect(attributions.some((a) => a.signer?.kind === 'unsigned')).toBe(true);
    expect(attributions.some((a) => a.signer?.kind === 'ad-hoc')).toBe(true);
    // A reused PID: two tokens, same pid, different identities.
    const byPid = new Map<number, Set<string>>();
    for (const a of attributions) if (a.pid !== undefined && a.identity) byPid.set(a.pid, (byPid.get(a.pid) ?? new Set()).add(a.identity));
    expect([...byPid.values()].some((ids) => ids.size > 1)).toBe(true);
    // Pending flows, a burst, growing counters, and enough length to look alive when looped.
    expect(flows.filter((f) => f.pending).length).toBeGreaterThanOrEqual(4);
    const starts = s.events.filter((e) => e.kind === 'flow').map((e) => e.at);
    expect(Math.max(...starts.map((at) => starts.filter((t) => t >= at && t < at + 5000).length))).toBeGreaterThanOrEqual(100);
    expect(s.events.filter((e) => e.kind === 'bytes').length).toBeGreaterThan(500);
    expect(s.lengthMs).toBeGreaterThanOrEqual(120_000);
  });

  it('the linux scenario uses the Linux signer classes and a reused PID that resolves to gone', () => {
    const attributions = [...load('linux').attributions.values()];
    for (const kind of ['package', 'modified', 'unpackaged'] as const) expect(attributions.some((a) => a.signer?.kind === kind)).toBe(true);
    expect(attributions.some((a) => a.trust === 'insecure' && a.reason?.errno === 'EACCES')).toBe(true);
    const pid24012 = attributions.filter((a) => a.pid === 24_012);
    expect(pid24012.map((a) => a.trust).sort()).toEqual(['gone', 'secure']);
  });
});
