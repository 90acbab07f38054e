// The real app (Root + store + Attributor) on a real Unix socket to a test extension built on the
// production ExtensionServer and createSocketSource.
import '../ui/helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createSocketSource } from '../../src/source/socket-source.js';
import { flow, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from '../ui/helpers/app.js';
import { KEY, plain, press, ready, waitForFrame } from '../ui/helpers/keys.js';
import { startTestExtension, testHello, type TestExtension } from './helpers/test-extension.js';

let app: Started | undefined;
let ext: TestExtension | undefined;
afterEach(async () => {
  app?.stop();
  app = undefined;
  await ext?.close();
  ext = undefined;
});

const ATTRIBUTIONS = new Map([[token(1), secure('curl')]]);
const row = (frame: string, text: string) => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';

async function startWith(extension: TestExtension) {
  const source = createSocketSource(extension.path, { id: 'ext', backoff: { initialMs: 50, maxMs: 200 } });
  app = startApp({ sources: [source], attributions: ATTRIBUTIONS });
  return app;
}

describe('actions over a real socket', () => {
  it('b on a pending flow sends a block verdict to the extension, and the row shows blocked', async () => {
    ext = await startTestExtension();
    ext.flows.set('p1', flow({ id: 'p1', token: token(1), remote: { address: '203.0.113.9', port: 443 }, pending: { deadline: Date.now() + 60_000 }, time: Date.now() }));
    const { instance } = await startWith(ext);
    await waitForFrame(instance, (f) => row(f, '203.0.113.9').includes('pending') && row(f, '203.0.113.9').includes('curl'));
    await ready(instance);
    const frame = await press(instance, 'b', (f) => row(f, '203.0.113.9').includes('blocked'));
    expect(ext.received).toContainEqual({ type: 'verdict', id: 'p1', action: 'block', remember: 'once' });
    expect(plain(frame)).toContain('block sent for curl');
    expect(plain(frame)).toMatch(/0 pending · 1 blocked/);
  });

  it('B asks how long and for what, sends remember=always, and the new rule appears in the rules view', async () => {
    ext = await startTestExtension();
    ext.flows.set('p2', flow({ id: 'p2', token: token(1), remote: { address: '198.51.100.7', port: 8443 }, pending: { deadline: Date.now() + 60_000 }, time: Date.now() }));
    const { instance } = await startWith(ext);
    await waitForFrame(instance, (f) => row(f, '198.51.100.7').includes('curl'));
    await ready(instance);
    await press(instance, 'B', (f) => plain(f).includes('Block curl → 198.51.100.7:8443'));
    // This extension announces neither verdict-durations nor verdict-scopes: what it cannot honour
    // is not offered, so an old extension gets only messages it knows.
    await press(instance, 'h', (f) => plain(f).includes('test-ext only remembers a process or a process + endpoint'));
    await press(instance, '3', (f) => plain(f).includes('test-ext cannot make a rule that expires'));
    await press(instance, '5', (f) => plain(f).includes('test-ext only remembers a process or a process + endpoint'));
    await press(instance, 'e', (f) => plain(f).includes('rule: block /usr/bin/curl (package curl) → 198.51.100.7 port 8443 tcp outbound, always'));
    await press(instance, KEY.enter, (f) => row(f, '198.51.100.7').includes('blocked'));
    expect(ext.received).toContainEqual({ type: 'verdict', id: 'p2', action: 'block', remember: 'always', scope: 'endpoint' });
    const rules = await press(instance, '3', (f) => plain(f).includes('[3:rules]') && plain(f).includes('198.51.100.7:8443'));
    expect(row(rules, '198.51.100.7:8443')).toMatch(/block\s+curl/);
    // d deletes it after confirmation.
    await press(instance, 'd', (f) => plain(f).includes('Delete rule block curl?'));
    await press(instance, 'y', (f) => plain(f).includes('no rules from the extension'));
    expect(ext.received).toContainEqual({ type: 'rule-remove', id: 'r1' });
  });

  it('a passive source refuses to block and says why in the status line', async () => {
    ext = await startTestExtension({ hello: testHello(['bytes'], { passive: true }) });
    ext.flows.set('m1', flow({ id: 'm1', token: token(1), remote: { address: '192.0.2.44', port: 443 }, time: Date.now() }));
    const { instance } = await startWith(ext);
    const first = await waitForFrame(instance, (f) => row(f, '192.0.2.44').includes('curl'));
    expect(plain(first)).toContain('passive monitor (start `sudo flowtop agent` to block)');
    await ready(instance);
    const frame = await press(instance, 'b', (f) => plain(f).includes('is a passive monitor'));
    expect(plain(frame)).toContain('this source is a passive monitor: it can show flows but not allow or block them (start `sudo flowtop agent` to block)');
    expect(row(frame, '192.0.2.44')).toContain('open');
    const always = await press(instance, 'A', (f) => !plain(f).includes('how long:'));
    expect(plain(always)).toContain('is a passive monitor');
    expect(ext.received).toEqual([]);
  });
});

describe('errors from the extension', () => {
  it('an error answer to an action shows in the status line', async () => {
    ext = await startTestExtension();
    const { instance } = await startWith(ext);
    await waitForFrame(instance, (f) => plain(f).includes('· connected'));
    await ext.waitSubscribed();
    // A pending flow the extension does not hold (it answers unknown-flow).
    ext.broadcast({ type: 'flow', flow: flow({ id: 'ghost1', token: token(1), remote: { address: '203.0.113.77', port: 443 }, pending: { deadline: Date.now() + 60_000 }, time: Date.now() }) });
    await waitForFrame(instance, (f) => row(f, '203.0.113.77').includes('pending'));
    await ready(instance);
    const frame = await press(instance, 'a', (f) => plain(f).includes('unknown-flow: no flow ghost1'));
    expect(plain(frame)).toContain('ext: unknown-flow: no flow ghost1');
  });
});

describe('connection status', () => {
  it('shows the extension going away and coming back', async () => {
    ext = await startTestExtension();
    const path = ext.path;
    const { instance } = await startWith(ext);
    await waitForFrame(instance, (f) => plain(f).includes('test-ext 1.0 on testhost (demo) · connected'));
    await ext.close();
    const down = await waitForFrame(instance, (f) => /reconnecting in \d+s|disconnected:|connecting/.test(row(f, 'test-ext')), 5_000, 'the header to show the lost connection');
    expect(row(down, 'test-ext')).not.toContain('· connected');
    ext = await startTestExtension({ path });
    await waitForFrame(instance, (f) => row(f, 'test-ext').includes('· connected'), 5_000, 'the header to show connected again');
  });
});
