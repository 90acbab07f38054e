// USER shows the system's name for every uid it knows, wherever the uid came from (a flow without a
// token, an attribution that carries only the uid), read from a real passwd file; unknown uids stay
// numbers.
import './helpers/force-color.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { passwdUserNames } from '../../src/app/users.js';
import { flow, hello, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, type, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
let dir: string | undefined;
afterEach(() => {
  app?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const lineOf = (frame: string, text: string) => plain(frame).split('\n').find((l) => l.includes(text)) ?? '';

describe('user names', () => {
  it('names uids from the passwd file in the USER column and the details, and keeps unknown ones as numbers', async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-passwd-'));
    const passwd = join(dir, 'passwd');
    // Real-world noise: comments, blank and short lines, a name with a space, a non-numeric uid.
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n# comment\n\nbroken\nev il:x:7:7::/:/bin/sh\nnum:x:1x:1::/:/bin/sh\nweb-data:x:33:33:www:/var/www:/usr/sbin/nologin\n');
    const attributions = new Map<string, Attribution>([[token(1), { trust: 'gone', pid: 31, uid: 33, name: 'php-fpm', reason: { call: 'pidfd_open', errno: 'ESRCH', message: 'the process exited' } }]]);
    const src = memorySource();
    app = startApp({ sources: [src], attributions, userName: passwdUserNames(passwd) });
    src.setStatus({ state: 'connected', hello: hello() });
    src.push(hello());
    src.push({ type: 'flow', flow: flow({ id: 'r1', pid: 1, uid: 0, ownerError: 'no socket owner found', remote: { address: '192.0.2.1', port: 53 }, time: Date.now() }) });
    src.push({ type: 'flow', flow: flow({ id: 'w1', token: token(1), remote: { address: '192.0.2.2', port: 443 }, time: Date.now() }) });
    src.push({ type: 'flow', flow: flow({ id: 'x1', pid: 9, uid: 4242, ownerError: 'no socket owner found', remote: { address: '192.0.2.3', port: 80 }, time: Date.now() }) });
    const frame = await waitForFrame(app.instance, (f) => f.includes('192.0.2.1') && f.includes('php-fpm') && f.includes('192.0.2.3'));
    expect(lineOf(frame, '192.0.2.1')).toMatch(/\broot\b/);
    expect(lineOf(frame, '192.0.2.2')).toMatch(/\bweb-data\b/);
    expect(lineOf(frame, '192.0.2.3')).toMatch(/\b4242\b/);
    await ready(app.instance);
    // The details of the root flow: the name with the uid.
    await press(app.instance, '/');
    await type(app.instance, 'port:53');
    await waitForFrame(app.instance, (f) => !f.includes('192.0.2.2'));
    await press(app.instance, KEY.enter, (f) => !plain(f).split('\n').some((l) => l.startsWith('/port:53')));
    const details = await press(app.instance, KEY.enter, (f) => f.includes('Esc closes'));
    expect(plain(details)).toContain('root (uid 0)');
  });
});
