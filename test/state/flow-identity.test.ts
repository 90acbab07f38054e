// The identity an extension sent with a flow (`flow.identity`) names the process only where the
// client's own lookup could not, and never changes the row's trust.
import { describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import type { FlowIdentity } from '../../src/protocol/messages.js';
import { displayName, extensionIdentity } from '../../src/state/derive.js';
import { flowKey, initialTable, reduce } from '../../src/state/reducer.js';
import { flowDetailLines } from '../../src/ui/Details.js';
import { ev, flow, insecure, secure, token } from './fixtures.js';

const hash = 'cd'.repeat(32);
const byAgent: FlowIdentity = { kind: 'sha256', value: hash, path: '/opt/tool/wget' };

function rowWith(attribution: Attribution | undefined, identity: FlowIdentity | null = byAgent) {
  const f = flow({ token: token(9), pid: 25142, ...(identity ? { identity } : {}), verdict: { action: 'block', by: 'rule', ruleId: 'r1' } });
  let s = reduce(initialTable(), { type: 'events', events: [ev({ type: 'flow', flow: f })] });
  if (attribution) s = reduce(s, { type: 'attributions', updates: [{ key: token(9), attribution }] });
  return s.flows.get(flowKey('ext', f.id))!;
}

describe('an identity the extension established', () => {
  it('names a process that was gone before the client looked, as the agent\'s word, and the trust stays gone', () => {
    const row = rowWith({ trust: 'gone', reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited' } });
    expect(row.attribution.trust).toBe('gone');
    expect(displayName(row)).toBe('wget (agent)');
    const lines = flowDetailLines(row);
    expect(lines).toContainEqual({ label: 'agent identity', value: `sha256:${hash}` });
    expect(lines).toContainEqual({ label: 'agent path', value: '/opt/tool/wget' });
    expect(lines.find((l) => l.label === 'from')?.value).toContain('identified by the agent (ext) when it connected');
    expect(lines.find((l) => l.label === 'trust')?.value).toMatch(/^gone/);
  });

  it('names a process the client could not look up at all (insecure without a name), still insecure', () => {
    const row = rowWith({ trust: 'insecure', reason: { call: 'pidfd_open', errno: 'EPERM', message: 'no permission' } });
    expect(displayName(row)).toBe('wget (agent)');
    expect(row.attribution.trust).toBe('insecure');
  });

  it('a package identity without a path is named by the packaged executable', () => {
    expect(displayName(rowWith({ trust: 'gone' }, { kind: 'package', package: 'wget', value: '/usr/bin/wget' }))).toBe('wget (agent)');
  });

  it('does not replace what the client found itself, nor a lookup still running', () => {
    expect(displayName(rowWith(secure('curl')))).toBe('curl');
    expect(displayName(rowWith(insecure('sshd')))).toBe('sshd');
    expect(displayName(rowWith(undefined))).toBe('resolving…');
    expect(extensionIdentity(rowWith(secure('curl')))).toBeUndefined();
    // still shown in the details pane, said to be the agent's
    const lines = flowDetailLines(rowWith(secure('curl')));
    expect(lines.find((l) => l.label === 'from')?.value).toBe('identified by the agent (ext) when it connected: it checked that exact process instance');
  });

  it('without one, a gone process is its PID hint as before', () => {
    expect(displayName(rowWith({ trust: 'gone' }, null))).toBe('pid 25142');
    expect(flowDetailLines(rowWith({ trust: 'gone' }, null)).some((l) => l.label === 'agent identity')).toBe(false);
  });
});
