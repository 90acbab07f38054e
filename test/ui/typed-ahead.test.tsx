// Keys that arrive in one read (typed ahead, a slow link, `tmux send-keys '1/zzz'`) act one after
// the other, each on the state the previous one left, exactly as typed slowly; a paste into the
// filter is text; a read never confirms a prompt choice the person did not see.
import './helpers/force-color.js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { flow, hello, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, waitForFrame } from './helpers/keys.js';
import { memorySource, type MemorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

const ATTRIBUTIONS = new Map<string, Attribution>([
  [token(1), secure('curl')],
  [token(4), secure('firefox', { user: 'bob' })],
]);
const FULL = hello(['verdicts', 'end-flows', 'rules', 'bytes', 'host-names', 'verdict-durations', 'verdict-scopes']);

async function started(): Promise<MemorySource> {
  const src = memorySource();
  app = startApp({ sources: [src], attributions: ATTRIBUTIONS });
  src.setStatus({ state: 'connected', hello: FULL });
  src.push(FULL);
  src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(1), remote: { address: '192.0.2.1', port: 443 }, time: Date.now() - 1_000 }) });
  src.push({ type: 'flow', flow: flow({ id: 'c2', token: token(1), remote: { address: '192.0.2.2', port: 8080 }, time: Date.now() }) });
  await waitForFrame(app.instance, (f) => plain(f).includes('192.0.2.2'));
  await ready(app.instance);
  return src;
}

const statusLine = (f: string) => plain(f).split('\n').filter((l) => l.trim()).at(-1) ?? '';

describe('keys typed ahead', () => {
  it('"1/zzz" in one read switches to the flows view and filters, as typed slowly', async () => {
    await started();
    await press(app!.instance, '2', (f) => plain(f).includes('[2:processes]'));
    const frame = await press(app!.instance, '1/zzz', (f) => plain(f).includes('[1:flows]') && statusLine(f).startsWith('/zzz'));
    expect(plain(frame)).toContain('nothing matches the filter');
    expect(plain(frame)).not.toContain('192.0.2.1');
  });

  it('Enter in the same read keeps the filter, and the keys after it act on the filtered rows', async () => {
    await started();
    // filter to :8080, keep it, then open the details of the one row left
    const frame = await press(app!.instance, '/8080\r\r', (f) => plain(f).includes('flow details'));
    expect(plain(frame)).toContain('filter "8080"');
    expect(plain(frame)).not.toContain('192.0.2.1:443');
  });

  it('multi-byte characters and Backspaces in one read edit the filter character by character', async () => {
    await started();
    await press(app!.instance, '/');
    const frame = await press(app!.instance, 'cafés\x7f', (f) => statusLine(f).startsWith('/café'));
    expect(statusLine(frame)).toMatch(/^\/café\S? \(Enter keeps/);
  });

  it('a bracketed paste goes into the filter as text: its Enter does not keep it, its letters are no commands', async () => {
    const src = await started();
    await press(app!.instance, '/');
    let frame = await press(app!.instance, '\x1b[200~80\r80\x1b[201~', (f) => statusLine(f).startsWith('/8080'));
    expect(statusLine(frame)).toContain('Enter keeps');
    frame = await press(app!.instance, KEY.enter, (f) => plain(f).includes('filter "8080"'));
    // Outside the filter a paste is ignored: "q" and "b" in it neither quit nor block.
    await press(app!.instance, '\x1b[200~qb\x1b[201~j', (f) => f !== frame);
    expect(app!.quits).toBe(0);
    expect(src.sent).toEqual([]);
  });

  it('A and Enter in one read open the prompt but do not confirm the default the person never saw', async () => {
    const src = await started();
    src.push({ type: 'flow', flow: flow({ id: 'w1', token: token(4), remote: { address: '151.101.1.1', port: 443 }, pending: { deadline: Date.now() + 30_000 }, time: Date.now() }) });
    await waitForFrame(app!.instance, (f) => plain(f).includes('1 pending'));
    const frame = await press(app!.instance, 'A\r', (f) => plain(f).includes('how long:') && plain(f).includes('Enter ignored: it came with a change not yet on screen; check the choice below, then confirm'));
    await new Promise((r) => setTimeout(r, 100));
    expect(src.sent).toEqual([]);
    expect(plain(app!.instance.lastFrame())).toContain('how long:');
    // The notice stands in the title's place for a few seconds; the rule line names the program.
    expect(plain(frame)).toContain('rule: allow /usr/bin/firefox (package firefox) → anywhere');
    // Seen, Enter alone confirms it.
    await press(app!.instance, KEY.enter, (f) => plain(f).includes('sent'));
    expect(src.sent).toEqual([{ type: 'verdict', id: 'w1', action: 'allow', remember: 'always', scope: 'process' }]);
  });
});
