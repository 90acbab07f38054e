// The filter line in the real app: what the person types filters what is on screen, and the editing
// keys behave as in a shell however the terminal chunks them.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, type, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(1), secure('curl', { user: 'alice' })],
  [token(2), secure('python3', { user: 'root', uid: 0 })],
]);

async function started(): Promise<Started> {
  const src = memorySource();
  const a = startApp({ sources: [src], attributions: ATTRIBUTIONS });
  src.setStatus({ state: 'connected', hello: hello() });
  src.push(hello());
  const remote = { address: '127.0.0.1', port: 8000 };
  src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(1), remote, time: Date.now() }) });
  src.push({ type: 'flow', flow: flow({ id: 'p1', token: token(2), remote, protocol: 'udp', verdict: { action: 'block', by: 'user' }, time: Date.now() }) });
  src.push({ type: 'flow', flow: flow({ id: 'w1', token: token(1), remote: { address: '93.184.216.34', port: 443 }, time: Date.now() }) });
  await waitForFrame(a.instance, (f) => f.includes('python3') && f.includes('93.184.216.34'));
  await ready(a.instance);
  return a;
}

/** Table rows on screen (lines with a REMOTE endpoint). */
const shown = (frame: string) => plain(frame).split('\n').filter((l) => /\d+\.\d+\.\d+\.\d+:\d+/.test(l));
const queryLine = (frame: string) => plain(frame).split('\n').find((l) => l.startsWith('/')) ?? '';

describe('filter keys', () => {
  it('a port, an address:port and a state word filter what the columns show', async () => {
    app = await started();
    await press(app.instance, '/');
    let frame = await type(app.instance, '8000');
    frame = await waitForFrame(app.instance, (f) => shown(f).length === 2, 3_000, 'two rows for 8000');
    expect(shown(frame).every((l) => l.includes('127.0.0.1:8000'))).toBe(true);
    await press(app.instance, KEY.ctrlU, (f) => queryLine(f).startsWith('/ ') || queryLine(f) === '/' || shown(f).length === 3);
    await type(app.instance, 'blocked');
    frame = await waitForFrame(app.instance, (f) => shown(f).length === 1, 3_000, 'the blocked row');
    expect(shown(frame)[0]).toContain('python3');
  });

  it('several Backspaces in one read erase, never insert ?', async () => {
    app = await started();
    await press(app.instance, '/');
    await type(app.instance, 'curlx');
    // A held key or a slow link: the terminal delivers the bytes in one read.
    const frame = await press(app.instance, '\x7f\x7f\x7f', (f) => queryLine(f).includes('/cu') && !queryLine(f).includes('cur'));
    expect(queryLine(frame)).not.toContain('?');
    expect(queryLine(frame)).toMatch(/^\/cu\S? /);
  });

  it('Ctrl-W erases the last word and Ctrl-U the line', async () => {
    app = await started();
    await press(app.instance, '/');
    await type(app.instance, 'proto:udp curl');
    let frame = await waitForFrame(app.instance, (f) => shown(f).length === 0, 3_000, 'no row is curl over udp');
    frame = await press(app.instance, KEY.ctrlW, (f) => shown(f).length === 1);
    expect(queryLine(frame)).toMatch(/^\/proto:udp /);
    expect(shown(frame)[0]).toContain('python3');
    frame = await press(app.instance, KEY.ctrlU, (f) => shown(f).length === 3);
    expect(queryLine(frame)).not.toContain('proto');
  });

  it('user:root keeps only root-owned flows', async () => {
    app = await started();
    await press(app.instance, '/');
    await type(app.instance, 'user:root');
    const frame = await waitForFrame(app.instance, (f) => shown(f).length === 1, 3_000, 'one root flow');
    expect(shown(frame)[0]).toContain('root');
  });
});
