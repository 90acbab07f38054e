// Frames of the real app: a flow whose process had exited before this client looked its token up has
// no user of the client's own, only the uid the agent sent with it (its word). From this machine's
// agent that uid is named from this machine's passwd file, and the details say whose word it is; from
// a fleet host (another machine) a local name would be a guess, so the uid stays a number.
import './helpers/force-color.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { passwdUserNames, type UserNameLookup } from '../../src/app/users.js';
import type { FlowSource } from '../../src/source/types.js';
import { flow, hello, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, type, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
let dir: string;
let userName: UserNameLookup;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flowtop-passwd-'));
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  userName = passwdUserNames(passwd);
});
afterEach(() => {
  app?.stop();
  app = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const GONE: Attribution = { trust: 'gone', pid: 25410, reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited before it could be identified' } };
const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(7), GONE],
  [token(8), GONE],
]);
const CURL = { kind: 'package' as const, package: 'curl', value: '/usr/bin/curl', path: '/usr/bin/curl' };
const ALLOWED = { action: 'allow' as const, by: 'rule' as const, ruleId: 'r0000000000a1' };

const lineOf = (frame: string, text: string) => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';
/** The USER cell of a flows-view row: the word after the PID. */
const userCell = (frame: string, remote: string) => lineOf(frame, remote).match(/\(agent\)\s+\d+\s+(\S+)/)?.[1];

describe('the uid the agent sent with a flow whose process has exited', () => {
  it('is named from this machine\'s users for this machine\'s agent, said to be the agent\'s word, and stays a number when it has no name', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, userName, rows: 40 });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(7), pid: 25410, uid: 0, remote: { address: '127.0.0.1', port: 8000 }, time: Date.now(), verdict: ALLOWED, identity: CURL }) });
    src.push({ type: 'flow', flow: flow({ id: 'c2', token: token(8), pid: 25411, uid: 4242, remote: { address: '127.0.0.2', port: 8000 }, time: Date.now(), verdict: ALLOWED, identity: CURL }) });
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('127.0.0.1:8000') && plain(f).includes('127.0.0.2:8000') && f.includes('(agent)'));
    expect(lineOf(frame, '127.0.0.1:8000')).toMatch(/✖ curl \(agent\)/);
    expect(userCell(frame, '127.0.0.1:8000')).toBe('root');
    expect(userCell(frame, '127.0.0.2:8000')).toBe('4242');

    // `user:root` finds it, by the name as shown.
    await ready(app.instance);
    await press(app.instance, '/');
    await type(app.instance, 'user:root');
    await waitForFrame(app.instance, (f) => !plain(f).includes('127.0.0.2:8000'));
    await press(app.instance, KEY.enter, (f) => !plain(f).split('\n').some((l) => l.startsWith('/user:root')));
    const details = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details')));
    expect(details).toMatch(/user +root \(uid 0\): the agent's word; this client did not check it/);
    expect(details).toMatch(/trust +gone/);
  });

  it('shows the uid without a name as a number in the details, the agent\'s word too', async () => {
    const src = memorySource();
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, userName, rows: 40 });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'c2', token: token(8), pid: 25411, uid: 4242, remote: { address: '127.0.0.2', port: 8000 }, time: Date.now(), verdict: ALLOWED, identity: CURL }) });
    await waitForFrame(app.instance, (f) => f.includes('(agent)'));
    await ready(app.instance);
    const details = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details')));
    expect(details).toMatch(/user +uid 4242: the agent's word; this client did not check it/);
  });

  it('stays the bare number for a fleet host\'s flow: a uid of another machine names nobody here', async () => {
    const host: FlowSource = { ...memorySource('web-1'), fleet: { role: 'host', label: 'nats://127.0.0.1:4222' } };
    const src = host as ReturnType<typeof memorySource>;
    app = startApp({ sources: [src], attributions: ATTRIBUTIONS, userName, rows: 40 });
    src.setStatus({ state: 'connected', hello: hello(undefined, { host: 'web-1' }) });
    src.push(hello(undefined, { host: 'web-1' }));
    // The same uid as root's here, and the same token as the local gone flow: neither is this machine's.
    src.push({ type: 'flow', flow: flow({ id: 'h1', token: token(7), pid: 25410, uid: 0, remote: { address: '127.0.0.1', port: 8000 }, time: Date.now(), verdict: ALLOWED, identity: CURL }) });
    const frame = await waitForFrame(app.instance, (f) => plain(f).includes('127.0.0.1:8000') && plain(f).includes('curl'));
    const row = lineOf(frame, '127.0.0.1:8000');
    expect(row).toMatch(/curl\s+web-1\s+25410\s+0\s/);
    expect(row).not.toContain('root');
    await ready(app.instance);
    const details = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('flow details')));
    expect(details).toMatch(/user +\? \(uid 0\)/);
    expect(details).not.toContain('root');
  });
});
