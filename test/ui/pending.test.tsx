// A flow that waits for a verdict is never missed: frames of the real app (Root + store +
// Attributor) fed from an in-process source.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import type { FlowRow } from '../../src/state/types.js';
import { flow, hello, insecure, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, type, waitForFrame } from './helpers/keys.js';
import { memorySource, type MemorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(1), secure('curl')],
  [token(2), insecure('sshd')],
  [token(4), secure('firefox', { user: 'bob' })],
]);

const FULL = hello(['verdicts', 'end-flows', 'rules', 'bytes', 'host-names', 'verdict-durations', 'verdict-scopes']);

function connect(src: MemorySource, h = FULL): void {
  src.setStatus({ state: 'connected', hello: h });
  src.push(h);
}

/** Twenty open curl flows (newest last), so a pending flow has rows to hide among. */
function openFlows(src: MemorySource, count = 20): void {
  for (let i = 0; i < count; i++) {
    src.push({ type: 'flow', flow: flow({ id: `o${i}`, token: token(1), remote: { address: `192.0.2.${i + 1}`, port: 443 }, time: Date.now() - 60_000 + i }) });
  }
}

function waiting(id: string, over: Parameters<typeof flow>[0] = {}): Parameters<MemorySource['push']>[0] {
  return { type: 'flow', flow: flow({ id, token: token(4), remote: { address: '151.101.1.1', port: 443 }, remoteHost: { name: 'push.services.mozilla.org', source: 'dns' }, pending: { deadline: Date.now() + 30_000 }, time: Date.now(), ...over }) };
}

const lines = (f: string) => plain(f).split('\n');
const rowOf = (f: string, text: string) => f.split('\n').find((l) => plain(l).includes(text)) ?? '';
const selectedRow = (f: string) => plain(f.split('\n').find((l) => l.includes('\x1b[7m')));
const firefoxRows = (f: string) => lines(f).filter((l) => /^\S+ firefox +100 /.test(l)).length;
/** The first table row (the line after the column titles). */
const firstRow = (f: string) => lines(f)[lines(f).findIndex((l) => l.includes('PROCESS')) + 1] ?? '';

/** The app with one flow waiting for a verdict (w1, firefox). */
async function oneWaiting(): Promise<{ src: MemorySource; instance: Started['instance'] }> {
  const src = memorySource();
  const started = startApp({ sources: [src], attributions: ATTRIBUTIONS });
  app = started;
  connect(src);
  src.push(waiting('w1'));
  await waitForFrame(started.instance, (f) => plain(f).includes('1 pending'));
  await ready(started.instance);
  return { src, instance: started.instance };
}

/** The app with five open flows, frozen (Space). */
async function frozenWithFiveFlows(): Promise<{ src: MemorySource; instance: Started['instance'] }> {
  const src = memorySource();
  const started = startApp({ sources: [src], attributions: ATTRIBUTIONS });
  app = started;
  connect(src);
  openFlows(src, 5);
  await waitForFrame(started.instance, (f) => plain(f).includes('5 live'));
  await ready(started.instance);
  await press(started.instance, ' ', (f) => plain(f).includes('FROZEN'));
  return { src, instance: started.instance };
}

describe('pending flows are never hidden', () => {
  it('a pending flow that does not match the filter stays pinned on top, and n selects it', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 16 });
    connect(src);
    openFlows(src);
    await waitForFrame(app.instance, (f) => plain(f).includes('20 live'));
    await ready(app.instance);
    await press(app.instance, '/');
    await type(app.instance, '192.0.2.7');
    await press(app.instance, KEY.enter, (f) => plain(f).includes('filter "192.0.2.7"') && !plain(f).includes('Enter keeps'));
    src.push(waiting('w1'));
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('1 pending') && plain(f).includes('firefox'));
    // Pinned first, yellow, with its countdown, although "firefox" does not match the filter.
    expect(plain(firstRow(frame))).toMatch(/firefox .*push\.services.* +pending (29|30)s/);
    expect(rowOf(frame, 'firefox')).toContain('\x1b[33m');
    expect(plain(frame)).toContain('192.0.2.7:443');
    const jumped = await press(app.instance, 'n', (f) => selectedRow(f).includes('firefox'));
    expect(plain(jumped)).not.toContain('no flow is waiting');
  });

  it('scrolling never moves a pending flow off the screen', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 14 });
    connect(src);
    openFlows(src, 40);
    src.push(waiting('w1'));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending') && plain(f).includes('firefox'));
    await ready(app.instance);
    const bottom = await press(app.instance, 'G', (f) => plain(f).includes('192.0.2.1:443'));
    expect(plain(firstRow(bottom))).toContain('firefox');
    expect(selectedRow(bottom)).toContain('192.0.2.1:443');
    const paged = await press(app.instance, KEY.pageUp, (f) => !plain(f).includes('192.0.2.1:443'));
    expect(plain(firstRow(paged))).toContain('firefox');
  });

  it('while frozen, a new pending flow still appears on top, n finds it and a acts on it', async () => {
    const { src, instance } = await frozenWithFiveFlows();
    src.push(waiting('w1'));
    src.push({ type: 'flow', flow: flow({ id: 'late', token: token(1), remote: { address: '203.0.113.99', port: 443 }, time: Date.now() }) });
    const frame = await waitForFrame(instance, (f) => plain(f).includes('firefox'));
    expect(plain(frame)).toContain('FROZEN');
    expect(plain(frame)).toContain('1 pending');
    expect(plain(frame)).not.toContain('203.0.113.99'); // the rest of the table stays frozen
    await press(instance, 'j');
    await press(instance, 'n', (f) => selectedRow(f).includes('firefox'));
    await press(instance, 'a', (f) => plain(f).includes('allow sent for firefox'));
    expect(src.sent).toEqual([{ type: 'verdict', id: 'w1', action: 'allow', remember: 'once' }]);
  });

  it('while frozen, a pending flow counts down by the clock, not by the time of the freeze', async () => {
    const { src, instance } = await frozenWithFiveFlows();
    await new Promise((r) => setTimeout(r, 2_100));
    // 30 s left as it arrives, 2 s after the freeze: by the frozen time it would read 32 s, more
    // than the extension gives it.
    src.push(waiting('w1'));
    const frame = await waitForFrame(instance, (f) => plain(f).includes('firefox'));
    expect(plain(frame)).toContain('FROZEN');
    expect(plain(rowOf(frame, 'firefox'))).toMatch(/pending (29|30)s +.* 0s$/);
    const later = await waitForFrame(instance, (f) => /pending (27|28)s/.test(plain(rowOf(f, 'firefox'))), 4_000, 'the countdown to run while frozen');
    expect(plain(later)).toContain('FROZEN');
  });

  it('n from another view switches to the flows and selects the pending flow; with none it says so', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    openFlows(src, 3);
    await waitForFrame(app.instance, (f) => plain(f).includes('3 live'));
    await ready(app.instance);
    await press(app.instance, 'n', (f) => plain(f).includes('no flow is waiting for a verdict'));
    await press(app.instance, '3', (f) => plain(f).includes('[3:rules]'));
    src.push(waiting('w1'));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    await press(app.instance, 'n', (f) => plain(f).includes('[1:flows]') && selectedRow(f).includes('firefox'));
  });

  it('the row turns urgent (yellow background) in its last seconds', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    src.push(waiting('w1', { pending: { deadline: Date.now() + 60_000 } }));
    src.push(waiting('w2', { token: token(1), remote: { address: '198.51.100.5', port: 8000 }, remoteHost: undefined, pending: { deadline: Date.now() + 6_000 } }));
    // Both attributed (they resolve apart from the flows themselves).
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('2 pending') && !plain(f).includes('resolving'));
    // Nearest deadline first.
    expect(plain(firstRow(frame))).toMatch(/curl .*198\.51\.100\.5:8000 +pending [56]s/);
    expect(rowOf(frame, '198.51.100.5')).toContain('\x1b[43m');
    expect(rowOf(frame, 'firefox')).not.toContain('\x1b[43m');
    expect(rowOf(frame, 'firefox')).toContain('\x1b[33m');
  });
});

describe('alerts', () => {
  it('rings once per new pending flow of an extension that takes verdicts; m mutes it', async () => {
    const src = memorySource();
    const rung: string[][] = [];
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, alert: (flows: readonly FlowRow[]) => rung.push(flows.map((f) => f.flow.id)) });
    connect(src);
    src.push(waiting('w1'));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    await waitForFrame(app.instance, () => rung.length === 1);
    // Another frame of the same flow rings no more.
    src.push({ type: 'bytes', counters: [{ id: 'w1', rx: 0, tx: 0 }], time: Date.now() });
    src.push(waiting('w2'));
    await waitForFrame(app.instance, (f) => plain(f).includes('2 pending'));
    await waitForFrame(app.instance, () => rung.length === 2);
    expect(rung).toEqual([['w1'], ['w2']]);
    await ready(app.instance);
    await press(app.instance, 'm', (f) => plain(f).includes('bell muted'));
    src.push(waiting('w3'));
    await waitForFrame(app.instance, (f) => plain(f).includes('3 pending'));
    await new Promise((r) => setTimeout(r, 100));
    expect(rung).toHaveLength(2);
    await press(app.instance, 'm', (f) => plain(f).includes('bell on'));
    src.push(waiting('w4'));
    await waitForFrame(app.instance, () => rung.length === 3);
    expect(rung[2]).toEqual(['w4']);
  });

  it('does not ring for an extension without verdicts, nor when started with the bell off', async () => {
    const src = memorySource();
    const rung: string[] = [];
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, alert: (flows) => rung.push(...flows.map((f) => f.flow.id)) });
    connect(src, hello(['bytes']));
    src.push(waiting('w1'));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    await new Promise((r) => setTimeout(r, 100));
    expect(rung).toEqual([]);
    app.stop();

    const src2 = memorySource();
    app = startApp({ sources: [src2], attributions: ATTRIBUTIONS, bell: false, alert: (flows) => rung.push(...flows.map((f) => f.flow.id)) });
    connect(src2);
    src2.push(waiting('w2'));
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    expect(plain(frame)).toContain('m unmute');
    await new Promise((r) => setTimeout(r, 100));
    expect(rung).toEqual([]);
  });

  it('says when the default decided a flow that waited', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    src.push(waiting('w1', { token: token(1), remote: { address: '127.0.0.1', port: 8000 }, remoteHost: undefined, time: Date.now() - 30_000 }));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    src.push({ type: 'verdict', id: 'w1', time: Date.now(), verdict: { action: 'block', by: 'default', policy: 'defaultAction', reason: 'nobody answered in time' } });
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('blocked by the default'));
    expect(plain(frame)).toMatch(/curl → 127\.0\.0\.1:8000 blocked by the default after 30 s/);
    expect(plain(frame)).toContain('0 pending');
  });
});

describe('the decision prompt', () => {
  it('names the process and the remote end, and sends each duration and scope', async () => {
    const { src, instance } = await oneWaiting();
    let frame = await press(instance, 'B', (f) => plain(f).includes('how long:'));
    expect(plain(frame)).toMatch(/Block firefox → push\.services\.mozilla\.org:443 \(100, secure, tcp out\) · waits \d+ s for you/);
    expect(plain(frame)).toContain('p any remote');
    expect(plain(frame)).toContain('h host push.services.mozilla.org');
    expect(plain(frame)).toContain('d domain mozilla.org');
    expect(plain(frame)).toContain('o port 443/tcp');
    expect(plain(frame)).toContain('rule: block /usr/bin/firefox (package firefox) → anywhere tcp outbound, always');
    frame = await press(instance, '3', (f) => plain(f).includes(', until '));
    frame = await press(instance, 'd', (f) => plain(f).includes('→ *.mozilla.org tcp outbound, until'));
    await press(instance, KEY.enter, (f) => plain(f).includes('block firefox to domain mozilla.org, for 1 h: sent'));
    expect(src.sent).toEqual([{ type: 'verdict', id: 'w1', action: 'block', remember: 'always', scope: 'domain', forMs: 3_600_000 }]);
    const decided = (id: string, action: 'allow' | 'block') => src.push({ type: 'verdict', id, time: Date.now(), verdict: { action, by: 'user' } });
    decided('w1', 'block');

    src.push(waiting('w2'));
    // Once w1 is decided, w2 is the one pending flow; the selection stayed on w1's row, n moves it.
    await waitForFrame(instance, (f) => firefoxRows(f) === 2 && plain(f).includes(' 1 pending'));
    await press(instance, 'n', (f) => /pending \d+s/.test(selectedRow(f)));
    await press(instance, 'A', (f) => plain(f).includes('how long:'));
    await press(instance, '4', (f) => plain(f).includes('(until restart)'));
    await press(instance, 'o', (f) => plain(f).includes('→ any address port 443 tcp outbound, always (until restart)'));
    await press(instance, KEY.enter, (f) => plain(f).includes('allow firefox to port 443/tcp, until restart: sent'));
    expect(src.sent[1]).toEqual({ type: 'verdict', id: 'w2', action: 'allow', remember: 'always', scope: 'port', session: true });
    decided('w2', 'allow');

    src.push(waiting('w3'));
    await waitForFrame(instance, (f) => firefoxRows(f) === 3 && plain(f).includes(' 1 pending'));
    await press(instance, 'n', (f) => /pending \d+s/.test(selectedRow(f)));
    await press(instance, 'A', (f) => plain(f).includes('how long:'));
    await press(instance, '2', (f) => plain(f).includes('(this process instance)'));
    await press(instance, 'h', (f) => plain(f).includes('→ push.services.mozilla.org tcp outbound, until it exits'));
    await press(instance, KEY.enter, (f) => plain(f).includes('sent'));
    expect(src.sent[2]).toEqual({ type: 'verdict', id: 'w3', action: 'allow', remember: 'process', scope: 'host' });
    decided('w3', 'allow');

    src.push(waiting('w4'));
    await waitForFrame(instance, (f) => firefoxRows(f) === 4 && plain(f).includes(' 1 pending'));
    await press(instance, 'n', (f) => /pending \d+s/.test(selectedRow(f)));
    await press(instance, 'B', (f) => plain(f).includes('how long:'));
    await press(instance, '1', (f) => plain(f).includes('decides this flow only'));
    await press(instance, KEY.enter, (f) => plain(f).includes('block sent for firefox'));
    expect(src.sent[3]).toEqual({ type: 'verdict', id: 'w4', action: 'block', remember: 'once' });
  });

  it('duration and scope keys that arrive in one read are each applied; a burst never confirms', async () => {
    const { src, instance } = await oneWaiting();
    await press(instance, 'A', (f) => plain(f).includes('how long:'));
    // "2p" as one write, as a slow link or typing ahead delivers it: until it exits, any remote.
    await press(instance, '2p', (f) => plain(f).includes('(this process instance) → anywhere'));
    await press(instance, '3o', (f) => plain(f).includes('→ any address port 443 tcp outbound, until'));
    // A burst holding a confirmation is not taken: the person must see the choice first.
    const held = await press(instance, '1y', (f) => plain(f).includes('y ignored'));
    expect(src.sent).toEqual([]);
    // Said in the prompt (it covers the status line), with the choice back as it was on screen.
    expect(plain(held)).toContain('→ any address port 443 tcp outbound, until');
    expect(plain(held)).toContain('y ignored: it came with a change not yet on screen; check the choice below, then confirm');
    await press(instance, KEY.enter, (f) => plain(f).includes('sent'));
    expect(src.sent).toEqual([{ type: 'verdict', id: 'w1', action: 'allow', remember: 'always', scope: 'port', forMs: 3_600_000 }]);
  });

  it('a note from before the prompt opened is not shown in it', async () => {
    const { src, instance } = await oneWaiting();
    await press(instance, '3', (f) => plain(f).includes('[3:rules]'));
    await press(instance, 'a', (f) => plain(f).includes('a/b/A/B act on a flow'));
    await press(instance, 'n', (f) => plain(f).includes('[1:flows]'));
    const frame = await press(instance, 'A', (f) => plain(f).includes('how long:'));
    expect(plain(frame)).toMatch(/Allow firefox → push\.services\.mozilla\.org:443 \(100, secure, tcp out\)/);
    expect(plain(frame)).not.toContain('a/b/A/B act on a flow');
  });

  it('offers no domain without a host name, and says why', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    src.push(waiting('w1', { remoteHost: undefined, remote: { address: '203.0.113.5', port: 443 } }));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    await ready(app.instance);
    await press(app.instance, 'B', (f) => plain(f).includes('how long:'));
    await press(app.instance, 'd', (f) => plain(f).includes('no host name is known for this flow, so it has no domain'));
    const frame = await press(app.instance, KEY.enter, (f) => !plain(f).includes('how long:'));
    expect(plain(frame)).toContain('no host name is known');
    expect(src.sent).toEqual([]);
  });

  it('stays fixed to its flow while rows move, and closes with a note when the flow is decided meanwhile', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    openFlows(src, 3);
    src.push(waiting('w1'));
    await waitForFrame(app.instance, (f) => plain(f).includes('1 pending'));
    await ready(app.instance);
    await press(app.instance, 'B', (f) => plain(f).includes('how long:'));
    // A flow that waits longer arrives and is pinned above: the prompt still names its own flow.
    src.push(waiting('w0', { token: token(1), remote: { address: '198.51.100.9', port: 22 }, remoteHost: undefined, pending: { deadline: Date.now() + 5_000 } }));
    let frame = await waitForFrame(app.instance, (f) => plain(firstRow(f)).includes('198.51.100.9'));
    expect(plain(frame)).toContain('Block firefox → push.services.mozilla.org:443');
    await press(app.instance, KEY.enter, (f) => plain(f).includes('sent'));
    expect(src.sent).toEqual([{ type: 'verdict', id: 'w1', action: 'block', remember: 'always', scope: 'process' }]);
    src.push({ type: 'verdict', id: 'w1', time: Date.now(), verdict: { action: 'block', by: 'user' } });
    // As a person would, act once the screen shows w1 decided (before, n would walk to it: still pending).
    await waitForFrame(app.instance, (f) => plain(rowOf(f, 'firefox')).includes('blocked'));

    // Now a prompt for w0, and the deadline decides it first.
    await press(app.instance, 'n', (f) => selectedRow(f).includes('198.51.100.9'));
    await press(app.instance, 'A', (f) => plain(f).includes('Allow curl → 198.51.100.9:22'));
    src.push({ type: 'verdict', id: 'w0', time: Date.now(), verdict: { action: 'block', by: 'default', reason: 'nobody answered in time' } });
    frame = await waitForFrame(app.instance, (f) => !plain(f).includes('how long:'));
    expect(plain(frame)).toMatch(/curl → 198\.51\.100\.9:22 blocked by the default after \d+ s before you answered; nothing was sent/);
    expect(src.sent).toHaveLength(1);
  });
});

describe('remembered rules in the rules view', () => {
  it('say which process instance a token rule is for, and how long each lasts', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    const base = { created: Date.now(), hits: 0, enabled: true, action: 'allow' as const };
    const identity = { kind: 'package' as const, package: 'curl', value: '/usr/bin/curl', label: 'curl' };
    src.push({
      type: 'rules',
      rules: [
        { ...base, id: 'r1', duration: { kind: 'process', token: token(1) }, endpoint: { port: 8000 } },
        { ...base, id: 'r2', identity, duration: { kind: 'until', until: Date.now() + 3_600_000 }, endpoint: { domain: 'example.com' } },
        { ...base, id: 'r3', identity, duration: { kind: 'always' }, session: true },
        { ...base, id: 'r4', identity, duration: { kind: 'always' } },
      ],
    });
    await ready(app.instance);
    const frame = await press(app.instance, '3', (f) => plain(f).includes('[3:rules]') && plain(f).includes('*.example.com'));
    const hex = Buffer.from(token(1), 'base64').toString('hex').slice(0, 12);
    expect(plain(rowOf(frame, ':8000'))).toMatch(new RegExp(`allow +process ${hex}… .* exit `));
    expect(plain(rowOf(frame, 'example.com'))).toMatch(/ (59m5\d|1h00) /);
    const curl = lines(frame).filter((l) => /allow +curl +any endpoint/.test(l));
    expect(curl.map((l) => / (restart|always) /.exec(l)?.[1])).toEqual(['restart', 'always']);
  });
});
