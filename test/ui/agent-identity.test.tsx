// Frames of the real app: a flow whose process was gone before the client looked it up, but which the
// agent identified when it connected, is named by the agent's identity (marked as such) and keeps the
// gone badge; the details pane says where the identity came from.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const hash = 'ef'.repeat(32);
const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(7), { trust: 'gone', reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited before it could be identified' } }],
]);

describe('an identity the agent sent with the flow', () => {
  it('names the gone process as the agent\'s, keeps the gone badge, and the details say where it came from', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 40 });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'w1', token: token(7), pid: 25142, remote: { address: '203.0.113.9', port: 80 }, time: Date.now(), verdict: { action: 'block', by: 'rule', ruleId: 'r1', blockMode: 'reject' }, identity: { kind: 'sha256', value: hash, path: '/tmp/t/wget' } }) });
    const frame = await waitForFrame(app.instance, (f) => f.includes('wget (agent)'));
    const row = plain(frame).split('\n').find((l) => l.includes('203.0.113.9')) ?? '';
    expect(row).toMatch(/✖ wget \(agent\)/);
    expect(plain(frame)).not.toContain('pid 25142');
    await ready(app.instance);
    const details = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details')));
    expect(details).toMatch(/process +wget \(identified by the agent\)/);
    expect(details).not.toMatch(/process +unknown/);
    expect(details).toContain(`sha256:${hash}`);
    expect(details).toContain('/tmp/t/wget');
    expect(details).toMatch(/identified by the agent \(\S+\) when it connected/);
    expect(details).toMatch(/gone: the process exited before it could be identified/);
  });
});
