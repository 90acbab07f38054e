// How the flows table behaves over time, in frames of the real app: freeze holds everything still,
// blocked and ended flows linger then leave, the header counts only what is live, a reconnect's
// snapshot replaces the rows of the last connection, and a first counter sample shows no rate.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { plain, press, ready, waitForFrame } from './helpers/keys.js';
import { memorySource, type MemorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(1), secure('curl')],
  [token(2), secure('wget')],
  [token(3), secure('nc')],
]);

function connect(src: MemorySource): void {
  src.setStatus({ state: 'connected', hello: hello() });
  src.push(hello());
}

const lineOf = (frame: string, text: string) => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';
const header = (frame: string) => plain(frame).split('\n')[1] ?? '';
const count = (frame: string, word: string) => Number(new RegExp(`(\\d+) ${word}`).exec(header(frame))?.[1] ?? NaN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the flows table over time', () => {
  it('Space freezes counters, rates and ages; a new pending flow is still counted in the header', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    const start = Date.now();
    src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(1), remote: { address: '198.51.100.7', port: 443 }, time: start - 5_000 }) });
    src.push({ type: 'bytes', time: start - 1_000, counters: [{ id: 'c1', rx: 1_000, tx: 0 }] });
    src.push({ type: 'bytes', time: start, counters: [{ id: 'c1', rx: 51_200, tx: 0 }] });
    let frame = await waitForFrame(app.instance, (f) => lineOf(f, 'curl').includes('50K'));
    await ready(app.instance);
    frame = await press(app.instance, ' ', (f) => f.includes('FROZEN'));
    const still = lineOf(frame, 'curl');
    // The stream goes on underneath: more bytes, a faster rate, a pending flow; time passes.
    for (let i = 1; i <= 3; i++) src.push({ type: 'bytes', time: start + i * 400, counters: [{ id: 'c1', rx: 51_200 + i * 900_000, tx: 0 }] });
    src.push({ type: 'flow', flow: flow({ id: 'p1', token: token(2), remote: { address: '203.0.113.5', port: 80 }, pending: { deadline: Date.now() + 30_000 }, time: Date.now() }) });
    frame = await waitForFrame(app.instance, (f) => count(f, 'pending') === 1, 3_000, 'the pending flow counted while frozen');
    await sleep(1_300); // ages would move by a second
    frame = app.instance.lastFrame() ?? '';
    expect(frame).toContain('FROZEN');
    expect(lineOf(frame, 'curl')).toBe(still);
    // Resume: the live table again, with what came meanwhile.
    frame = await press(app.instance, ' ', (f) => !f.includes('FROZEN') && lineOf(f, 'curl').includes('2.6M'));
    expect(lineOf(frame, 'curl')).not.toBe(still);
  });

  it('blocked flows are not live; they linger dimmed, then leave, as ended ones do', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, table: { lingerMs: 800 } });
    connect(src);
    for (let i = 0; i < 3; i++) src.push({ type: 'flow', flow: flow({ id: `o${i}`, token: token(1), remote: { address: `198.51.100.${i + 1}`, port: 443 }, verdict: { action: 'allow', by: 'user' }, time: Date.now() }) });
    // Blocked by rule: the extension sends no `end` for them.
    for (let i = 0; i < 5; i++) src.push({ type: 'flow', flow: flow({ id: `b${i}`, token: token(2), remote: { address: `203.0.113.${i + 1}`, port: 80 }, verdict: { action: 'block', by: 'rule', ruleId: 'r1' }, time: Date.now() }) });
    // A pending flow that the person then blocks.
    src.push({ type: 'flow', flow: flow({ id: 'p1', token: token(3), remote: { address: '192.0.2.9', port: 25 }, pending: { deadline: Date.now() + 30_000 }, time: Date.now() }) });
    let frame = await waitForFrame(app.instance, (f) => f.includes('192.0.2.9') && f.includes('203.0.113.5'));
    expect(count(frame, 'live')).toBe(4);
    expect(count(frame, 'blocked')).toBe(5);
    expect(lineOf(frame, '203.0.113.1')).toContain('blocked');
    src.push({ type: 'verdict', id: 'p1', time: Date.now(), verdict: { action: 'block', by: 'user' } });
    frame = await waitForFrame(app.instance, (f) => count(f, 'blocked') === 6);
    expect(count(frame, 'live')).toBe(3);
    // After the linger only the three open flows are left.
    frame = await waitForFrame(app.instance, (f) => !f.includes('203.0.113.') && !f.includes('192.0.2.9'), 4_000, 'blocked rows to leave');
    expect(count(frame, 'live')).toBe(3);
    expect(count(frame, 'blocked')).toBe(0);
    expect(frame).toContain('198.51.100.3');
  });

  it('a blocked UDP conversation is one row with its datagram count', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    const blocked = flow({ id: 'u1', token: token(3), protocol: 'udp', remote: { address: '203.0.113.53', port: 5353 }, verdict: { action: 'block', by: 'rule', ruleId: 'r1' }, time: Date.now() });
    src.push({ type: 'flow', flow: blocked });
    for (let n = 2; n <= 15; n++) src.push({ type: 'flow', flow: { ...blocked, packets: n } });
    const frame = await waitForFrame(app.instance, (f) => f.includes('blocked ×15'));
    expect(plain(frame).split('\n').filter((l) => l.includes('203.0.113.53'))).toHaveLength(1);
    expect(count(frame, 'live')).toBe(0);
  });

  it('after a reconnect, the snapshot replaces the rows of the last connection', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    src.push({ type: 'flow', flow: flow({ id: 'old1', token: token(1), remote: { address: '198.51.100.1', port: 443 }, pending: { deadline: Date.now() + 30_000 }, time: Date.now() }) });
    src.push({ type: 'flow', flow: flow({ id: 'kept', token: token(2), remote: { address: '198.51.100.2', port: 443 }, time: Date.now() }) });
    await waitForFrame(app.instance, (f) => f.includes('198.51.100.1') && f.includes('198.51.100.2'));
    // The extension restarted: a new hello, and its snapshot knows only one of them, plus a new flow.
    src.setStatus({ state: 'reconnecting', reason: 'the extension closed the connection', retryAt: Date.now() + 250, attempt: 1 });
    connect(src);
    src.push({ type: 'flow', flow: flow({ id: 'kept', token: token(2), remote: { address: '198.51.100.2', port: 443 }, time: Date.now() }) });
    src.push({ type: 'flow', flow: flow({ id: 'new1', token: token(3), remote: { address: '198.51.100.3', port: 443 }, time: Date.now() }) });
    // (The status line may name the old flow: it was waiting and left the table.)
    const table = (f: string) => f.split('\n').slice(0, -1).join('\n');
    const frame = await waitForFrame(app.instance, (f) => table(f).includes('198.51.100.3') && !table(f).includes('198.51.100.1'), 3_000, 'the old row replaced');
    expect(frame).toContain('198.51.100.2');
    expect(count(frame, 'live')).toBe(2);
    expect(count(frame, 'pending')).toBe(0);
  });

  it('the first counter sample of a connection open before flowtop is a baseline: no rate', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
    connect(src);
    const now = Date.now();
    src.push({ type: 'flow', flow: flow({ id: 'old', token: token(1), remote: { address: '198.51.100.9', port: 22 }, time: now }) });
    src.push({ type: 'bytes', time: now + 5, counters: [{ id: 'old', rx: 2_147_483_648, tx: 628_000_000 }] });
    let frame = await waitForFrame(app.instance, (f) => lineOf(f, 'curl').includes('2.0G'));
    expect(lineOf(frame, 'curl')).not.toMatch(/\/s/);
    expect(header(frame)).toMatch(/rx - tx -/);
    src.push({ type: 'bytes', time: now + 1_005, counters: [{ id: 'old', rx: 2_147_483_648 + 10_240, tx: 628_000_000 }] });
    frame = await waitForFrame(app.instance, (f) => lineOf(f, 'curl').includes('10K/s'));
    expect(header(frame)).toMatch(/rx 10K\/s/);
  });
});
