// Frames of the real app: a verdict that says who decided (a person over NATS, or a socket client's
// user) shows it in the details pane; one that does not, shows no such line.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([[token(3), { trust: 'secure', pid: 4100, name: 'curl', path: '/usr/bin/curl', identity: 'package:curl:/usr/bin/curl' }]]);

describe('who decided a flow', () => {
  it('the details pane names the NATS user and server that allowed it', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, rows: 40 });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'd1', token: token(3), pid: 4100, remote: { address: '198.51.100.4', port: 443 }, time: Date.now(), pending: { deadline: Date.now() + 30_000 } }) });
    await waitForFrame(app.instance, (f) => f.includes('198.51.100.4'));
    src.push({ type: 'verdict', id: 'd1', time: Date.now(), verdict: { action: 'allow', by: 'user', decider: 'nats:alice@n4222' } });
    await waitForFrame(app.instance, (f) => plain(f).includes('allowed'));
    await ready(app.instance);
    const details = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details')));
    expect(details).toMatch(/verdict +allow by user/);
    expect(details).toMatch(/decided by +nats:alice@n4222/);
  });
});
