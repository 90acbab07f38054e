// Frames of the real app (Root + store + Attributor) fed from an in-process source.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, insecure, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, type, waitForFrame } from './helpers/keys.js';
import { memorySource, type MemorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(1), secure('curl')],
  [token(2), insecure('sshd')],
  [token(3), { trust: 'gone', pid: 300, name: 'ghost', reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited before it could be identified' } }],
  [token(4), secure('firefox', { user: 'bob' })],
]);

function feed(src: MemorySource): void {
  src.setStatus({ state: 'connected', hello: hello() });
  src.push(hello());
  src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(1), remote: { address: '93.184.216.34', port: 443 }, remoteHost: { name: 'example.com', source: 'dns' }, time: Date.now() - 3_000 }) });
  src.push({ type: 'flow', flow: flow({ id: 's1', token: token(2), remote: { address: '10.9.9.9', port: 22 }, time: Date.now() - 2_000 }) });
  src.push({ type: 'flow', flow: flow({ id: 'g1', token: token(3), remote: { address: '1.1.1.1', port: 53 }, protocol: 'udp', time: Date.now() - 1_000 }) });
  src.push({ type: 'flow', flow: flow({ id: 'u1', token: token(99), remote: { address: '8.8.8.8', port: 853 }, time: Date.now() }) });
  src.push({ type: 'flow', flow: flow({ id: 'f1', token: token(4), remote: { address: '151.101.1.1', port: 443 }, remoteHost: { name: 'mozilla.org', source: 'dns' }, pending: { deadline: Date.now() + 30_000 }, time: Date.now() - 500 }) });
}

const rowOf = (frame: string, text: string) => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';

describe('flows view', () => {
  it('renders rows with the right trust badges and the header counts', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    // A frame draws one state, but its rows are read from the table's shared flow map, which may
    // already hold a later step's rows (names resolved) while the header's counts are that state's:
    // the counts catch up a frame later. So the frame waited for is the one with both.
    const frame = await waitForFrame(app.instance, (f) => f.includes('curl') && f.includes('sshd') && f.includes('ghost') && f.includes('firefox') && plain(f).includes('% secure') && !plain(f).includes(' 0% secure'));
    expect(rowOf(frame, 'curl')).toMatch(/^.?✔ curl/);
    expect(rowOf(frame, 'sshd')).toMatch(/⚠ sshd/);
    expect(rowOf(frame, 'ghost')).toMatch(/✖ ghost/);
    expect(rowOf(frame, 'example.com:443')).toContain('curl');
    expect(rowOf(frame, 'firefox')).toMatch(/pending \d+s/);
    const text = plain(frame);
    expect(text).toContain('test-ext 1.0 on box (demo) · connected');
    expect(text).toContain('5 live · 1 pending · 0 blocked · 40% secure');
    // The unrecorded token is not secure: a red row with the warning badge.
    expect(rowOf(frame, '8.8.8.8')).toMatch(/⚠/);
  });

  it('counts each flow once in the header: a blocked flow that ended is blocked, not also closed', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => plain(f).includes('5 live'));
    src.push({ type: 'verdict', id: 'f1', time: Date.now(), verdict: { action: 'block', by: 'user' } });
    src.push({ type: 'end', id: 'f1', time: Date.now(), reason: 'blocked' });
    src.push({ type: 'end', id: 'c1', time: Date.now() });
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('3 live'));
    expect(plain(frame)).toContain('3 live · 0 pending · 1 blocked');
    expect(plain(frame)).toMatch(/ · 1 closed · /);
  });

  it('insecure rows are red as a whole; secure badges green', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    const frame = await waitForFrame(app.instance, (f) => f.includes('sshd') && f.includes('curl'));
    const sshd = frame.split('\n').find((l) => l.includes('sshd'))!;
    expect(sshd.startsWith('\x1b[31m')).toBe(true);
    expect(sshd).toContain('⚠');
    const curl = frame.split('\n').find((l) => l.includes('curl'))!;
    expect(curl).toContain('\x1b[32m✔');
    expect(curl.startsWith('\x1b[31m')).toBe(false);
  });

  it('ASCII mode: [ok] [!!] [x] [..] badges', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, ascii: true });
    feed(src);
    src.push({ type: 'flow', flow: flow({ id: 'p1', token: token(50), time: Date.now() }) });
    const frame = await waitForFrame(app.instance, (f) => f.includes('curl') && f.includes('ghost'));
    expect(rowOf(frame, 'curl')).toMatch(/\[ok\] curl/);
    expect(rowOf(frame, 'sshd')).toMatch(/\[!!\] sshd/);
    expect(rowOf(frame, 'ghost')).toMatch(/\[x\] +ghost/);
    // Nothing outside ASCII anywhere on the screen (a non-UTF-8 terminal shows it all).
    expect(plain(frame)).toMatch(/^[\x00-\x7f]*$/);
    const help = await (async () => {
      await ready(app!.instance);
      return press(app!.instance, '?', (f) => plain(f).includes('Keys ('));
    })();
    expect(plain(help)).toMatch(/^[\x00-\x7f]*$/);
  });

  it('the filter narrows rows as you type; Enter keeps it, Esc clears it', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('firefox') && f.includes('curl'));
    await ready(app.instance);
    await press(app.instance, '/');
    let frame = await type(app.instance, 'fi');
    frame = await waitForFrame(app.instance, (f) => !plain(f).includes(' curl '));
    expect(plain(frame)).toContain('firefox');
    expect(plain(frame)).not.toContain('sshd');
    // firefox waits for a verdict: no filter hides it.
    frame = await press(app.instance, 'z', (f) => plain(f).includes('nothing else matches the filter'));
    expect(plain(frame)).toContain('firefox');
    frame = await press(app.instance, KEY.backspace, (f) => plain(f).includes('/fi') && !plain(f).includes('/fiz'));
    expect(plain(frame)).toContain('firefox');
    await press(app.instance, KEY.enter, (f) => plain(f).includes('filter "fi"') && !plain(f).includes('Enter keeps'));
    frame = await press(app.instance, KEY.escape, (f) => plain(f).includes('curl'));
    expect(plain(frame)).toContain('sshd');
    expect(plain(frame)).not.toContain('filter "');
  });

  it('! shows only flows that are not secure', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('firefox') && f.includes('curl'));
    await ready(app.instance);
    const frame = await press(app.instance, '!', (f) => plain(f).includes('only not-secure') && !plain(f).includes('curl'));
    expect(plain(frame)).toContain('sshd');
    expect(plain(frame)).toContain('ghost');
  });

  it('sorts by the chosen column, marks it, and reverses', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('firefox') && f.includes('ghost'));
    await ready(app.instance);
    const names = (f: string) =>
      plain(f).split('\n').map((l) => /(curl|sshd|ghost|firefox)/.exec(l)?.[1]).filter(Boolean);
    // Default: newest first. firefox waits for a verdict: it stays pinned on top in every order.
    expect(names(app.instance.lastFrame()!)).toEqual(['firefox', 'ghost', 'sshd', 'curl']);
    await press(app.instance, 's', (f) => plain(f).includes('sort trust'));
    let frame = await press(app.instance, 's', (f) => plain(f).includes('sort process'));
    expect(plain(frame)).toContain('PROCESS▼');
    expect(names(frame)).toEqual(['firefox', 'curl', 'ghost', 'sshd']);
    frame = await press(app.instance, 'S', (f) => plain(f).includes('PROCESS▲'));
    expect(names(frame)).toEqual(['firefox', 'sshd', 'ghost', 'curl']);
    // Trust, reversed: secure first (newest first among equals), then insecure last.
    frame = await press(app.instance, '<', (f) => plain(f).includes('sort trust'));
    expect(names(frame)).toEqual(['firefox', 'curl', 'ghost', 'sshd']);
  });

  it('the details pane explains an insecure attribution in plain words', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 40 });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('sshd') && f.includes('firefox'));
    await ready(app.instance);
    // Rows newest first: firefox, 8.8.8.8, ghost, sshd, curl.
    await press(app.instance, 'j');
    await press(app.instance, 'j');
    await press(app.instance, 'j');
    const frame = await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details'));
    const text = plain(frame);
    expect(text).toContain('secure lookup failed with EPERM (100001); name comes from the PID only and can be spoofed by PID reuse');
    expect(text).toContain(`token       ${Buffer.from(token(2), 'base64').toString('hex')}`);
    expect(text).toContain('path        /usr/sbin/sshd');
    await press(app.instance, KEY.escape, (f) => !plain(f).includes('flow details'));
  });

  it('on a short terminal the details pane keeps its lines: the table shrinks, then J/K scroll', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 16 });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('curl') && f.includes('firefox'));
    await ready(app.instance);
    // Rows newest first: firefox, 8.8.8.8, ghost, sshd, curl.
    await press(app.instance, KEY.end, (f) => (f.split('\n').find((l) => l.includes('curl')) ?? '').includes('\x1b[7m'));
    let frame = await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details'));
    let text = plain(frame);
    expect(text.split('\n').length).toBeLessThanOrEqual(15);
    // The selected row stays in view above the pane.
    expect(rowOf(frame, 'curl')).toMatch(/✔ curl/);
    expect(text).toContain('path        /usr/bin/curl');
    expect(text).toContain('identity    package:curl:/usr/bin/curl');
    expect(text).toMatch(/lines 1-8 of 10, J\/K scroll/);
    expect(text).not.toContain('sha256');
    await press(app.instance, 'J', (f) => /lines 2-9 of 10/.test(plain(f)));
    frame = await press(app.instance, 'J', (f) => /lines 3-10 of 10/.test(plain(f)));
    text = plain(frame);
    expect(text).toContain(`sha256      ${'ab'.repeat(32)}`);
    expect(text).toContain(`token       ${Buffer.from(token(1), 'base64').toString('hex')}`);
    // At the end already: another J changes nothing; K goes back up.
    app.instance.stdin.write('J');
    frame = await press(app.instance, 'K', (f) => /lines 2-9 of 10/.test(plain(f)));
    expect(plain(frame)).toContain('flow details');
  });

  it('shows "App via helper" when the app token differs', async () => {
    const src = memorySource();
    const attributions = new Map(ATTRIBUTIONS);
    attributions.set(token(7), secure('ping'));
    attributions.set(token(8), secure('Terminal'));
    app = startApp({ sources: [src], attributions });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'v1', token: token(7), appToken: token(8), time: Date.now() }) });
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('Terminal via ping'));
    expect(rowOf(frame, 'Terminal via ping')).toContain('✔');
  });

  it('the help overlay lists every key', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 30 });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('curl'));
    await ready(app.instance);
    let frame = await press(app.instance, '?', (f) => plain(f).includes('Keys (any key closes this help)'));
    for (const key of ['j k', 'PgUp PgDn', 'g G', 'Tab', '/', '!', 'S  r', 'a  b', 'A  B', 'd  Del', 'Space', 'q  Ctrl-C']) expect(plain(frame)).toContain(key);
    frame = await press(app.instance, 'x', (f) => !plain(f).includes('Keys (any key'));
    expect(plain(frame)).toContain('curl');
  });

  it('keeps the frame within the viewport (rows - 1) with many flows, and moves by pages', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 24, columns: 80 });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    for (let i = 0; i < 300; i++) src.push({ type: 'flow', flow: flow({ id: `m${i}`, token: token(1), time: 1_000 + i, remote: { address: `10.0.${i >> 8}.${i & 255}`, port: 443 } }) });
    let frame = await waitForFrame(app.instance, (f) => plain(f).includes('300 live'));
    expect(frame.split('\n').length).toBeLessThanOrEqual(23);
    expect(Math.max(...plain(frame).split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
    await ready(app.instance);
    frame = await press(app.instance, 'G', (f) => plain(f).includes('10.0.0.0:443'));
    frame = await press(app.instance, 'g', (f) => plain(f).includes('10.0.1.43:443'));
    frame = await press(app.instance, KEY.pageDown, (f) => !plain(f).includes('10.0.1.43:443'));
    expect(frame.split('\n').length).toBeLessThanOrEqual(23);
  });

  it('Space freezes the display while the stream goes on', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 30 });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('firefox') && f.includes('curl'));
    await ready(app.instance);
    await press(app.instance, ' ', (f) => plain(f).includes('FROZEN'));
    src.push({ type: 'flow', flow: flow({ id: 'late', token: token(1), remote: { address: '192.0.2.200', port: 443 }, time: Date.now() }) });
    await new Promise((r) => setTimeout(r, 200)); // several snapshot periods: a frozen screen must not change
    expect(plain(app.instance.lastFrame())).not.toContain('192.0.2.200');
    expect(app.store.current().flows.size).toBe(6);
    await press(app.instance, ' ', (f) => plain(f).includes('192.0.2.200') && !plain(f).includes('FROZEN'));
  });

  it('Tab, Shift-Tab and 1 2 3 switch views', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('curl'));
    await ready(app.instance);
    let frame = await press(app.instance, KEY.tab, (f) => plain(f).includes('[2:processes]'));
    expect(plain(frame)).toMatch(/SIGNER \/ PACKAGE/);
    expect(plain(frame)).toMatch(/✔ curl +package curl/);
    frame = await press(app.instance, KEY.tab, (f) => plain(f).includes('[3:rules]'));
    frame = await press(app.instance, KEY.shiftTab, (f) => plain(f).includes('[2:processes]'));
    frame = await press(app.instance, '1', (f) => plain(f).includes('[1:flows]'));
  });

  it('the rules view waits for the rule list before it says there are none, and says when the extension keeps no rules', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    await ready(app.instance);
    let frame = await press(app.instance, '3', (f) => plain(f).includes('[3:rules]'));
    expect(plain(frame)).toContain('waiting for the rule list…');
    expect(plain(frame)).not.toContain('no rules');
    src.push({ type: 'rules', rules: [] });
    frame = await waitForFrame(app.instance, (f) => plain(f).includes('no rules from the extension'));
    expect(plain(frame)).not.toContain('waiting for the rule list');
    app.stop();

    const bare = memorySource();
    app = startApp({ sources: [bare], attributions: ATTRIBUTIONS });
    bare.setStatus({ state: 'connected', hello: hello(['bytes']) });
    bare.push(hello(['bytes']));
    await ready(app.instance);
    frame = await press(app.instance, '3', (f) => plain(f).includes('keeps no rules'));
    expect(plain(frame)).toContain('test-ext keeps no rules (it has no "rules" capability)');
  });

  it('q quits', async () => {
    const src = memorySource();
    app = startApp({ sources: [src] });
    await waitForFrame(app.instance, (f) => plain(f).includes('no flows yet'));
    await ready(app.instance);
    app.instance.stdin.write('q');
    const started = app;
    await waitForFrame(app.instance, () => started.quits === 1);
  });
});

describe('actions on a process and on a flow that is not pending', () => {
  it('b in the processes view blocks that identity\'s pending flows; none pending says so', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    // A second pending flow of firefox, and one of curl that is already open.
    src.push({ type: 'flow', flow: flow({ id: 'f2', token: token(4), pending: { deadline: Date.now() + 30_000 }, time: Date.now() }) });
    await waitForFrame(app.instance, (f) => f.includes('firefox') && f.includes('2 pending'));
    await ready(app.instance);
    await press(app.instance, '2', (f) => plain(f).includes('[2:processes]'));
    await press(app.instance, '/');
    await type(app.instance, 'firefox');
    await press(app.instance, KEY.enter, (f) => !plain(f).includes('Enter keeps') && !plain(f).includes('curl'));
    const frame = await press(app.instance, 'b', (f) => plain(f).includes('block sent for 2 pending flows of firefox'));
    expect(plain(frame)).toContain('block sent for 2 pending flows of firefox');
    expect(src.sent).toEqual([
      { type: 'verdict', id: 'f1', action: 'block', remember: 'once' },
      { type: 'verdict', id: 'f2', action: 'block', remember: 'once' },
    ]);
    // curl has no pending flow: nothing is sent, and the status line says why.
    await press(app.instance, KEY.escape, (f) => plain(f).includes('curl'));
    await press(app.instance, '/');
    await type(app.instance, 'curl');
    await press(app.instance, KEY.enter, (f) => plain(f).includes('filter "curl"') && !plain(f).includes('Enter keeps'));
    const none = await press(app.instance, 'a', (f) => plain(f).includes('no flow of curl is waiting for a verdict'));
    expect(plain(none)).toContain('A/B make a rule for this process');
    expect(src.sent).toHaveLength(2);
  });

  it('B on an open (not pending) flow sends rule-add with the verified identity; e adds the endpoint', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('curl') && f.includes('firefox'));
    await ready(app.instance);
    // The last row is curl (open, secure).
    await press(app.instance, KEY.end, (f) => (f.split('\n').find((l) => l.includes('curl')) ?? '').includes('\x1b[7m'));
    let frame = await press(app.instance, 'B', (f) => plain(f).includes('Block curl → example.com:443'));
    // Not waiting: "once" has nothing to decide; the rule is for later flows.
    expect(plain(frame)).toContain('not waiting (open): a rule for later flows');
    frame = await press(app.instance, 'e', (f) => plain(f).includes('rule: block /usr/bin/curl (package curl) → example.com port 443 tcp outbound, always'));
    frame = await press(app.instance, KEY.enter, (f) => plain(f).includes('sent'));
    expect(plain(frame)).toContain('rule "block curl to endpoint example.com:443, always" sent');
    const identity = { kind: 'package', package: 'curl', value: '/usr/bin/curl', label: 'curl' };
    expect(src.sent).toEqual([
      {
        type: 'rule-add',
        rule: { action: 'block', identity, duration: { kind: 'always' }, endpoint: { host: 'example.com', port: 443 }, protocol: 'tcp', direction: 'outbound' },
      },
    ]);
    // A, then Enter: the process alone (the prompt starts on "any remote"), always.
    await press(app.instance, 'A', (f) => plain(f).includes('Allow curl → example.com:443'));
    await press(app.instance, KEY.enter, (f) => plain(f).includes('rule "allow curl, always" sent'));
    expect(src.sent[1]).toEqual({ type: 'rule-add', rule: { action: 'allow', identity, duration: { kind: 'always' }, protocol: 'tcp', direction: 'outbound' } });
  });

  it('B on an open flow of an insecure process offers only this process instance, and says why not always', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    feed(src);
    await waitForFrame(app.instance, (f) => f.includes('sshd'));
    await ready(app.instance);
    // Rows: firefox (pending, pinned), then newest first: 8.8.8.8, ghost, sshd.
    for (let i = 0; i < 3; i++) await press(app.instance, 'j');
    let frame = await press(app.instance, 'B', (f) => plain(f).includes('Block sshd → 10.9.9.9:22'));
    expect(plain(frame)).toContain('rule: block sshd (this process instance) → anywhere tcp outbound, until it exits');
    frame = await press(app.instance, '5', (f) => plain(f).includes('sshd has no verified code identity (insecure), so a rule for it could match another program'));
    frame = await press(app.instance, KEY.enter, (f) => !plain(f).includes('how long:'));
    expect(plain(frame)).toContain('always: sshd has no verified code identity');
    expect(src.sent).toEqual([]);
  });
});
