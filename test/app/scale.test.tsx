// Scale: 100,000 flows from a real socket, then 10,000 events/s; the frame stays bounded and the
// counts stay exact. (Speed itself is measured by bench/tui, not here.)
import '../ui/helpers/force-color.js';
import { afterEach, expect, it } from 'vitest';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { createSocketSource } from '../../src/source/socket-source.js';
import { flow, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from '../ui/helpers/app.js';
import { plain, waitForFrame } from '../ui/helpers/keys.js';
import { startTestExtension, type TestExtension } from './helpers/test-extension.js';

let app: Started | undefined;
let ext: TestExtension | undefined;
afterEach(async () => {
  app?.stop();
  await ext?.close();
});

const INITIAL = 100_000;
const TICKS = 20; // 100 ms each: 2 s at 10,000 events/s
const PER_TICK = 1_000;
/** One initial flow in this many waits for a verdict: those are pinned on top, and a few leave
 *  room below them to see the newest flows. */
const PENDING_EVERY = 10_000;

it('100,000 flows then 10,000 events/s: bounded frames, exact counts', { timeout: 120_000 }, async () => {
  const now = Date.now();
  const initial = function* (): Iterable<ExtensionMessage> {
    for (let i = 0; i < INITIAL; i++) {
      yield { type: 'flow', flow: flow({ id: `s${i}`, time: now - INITIAL + i, token: token(1 + (i % 3)), remote: { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 443 }, ...(i % PENDING_EVERY === 0 ? { pending: { deadline: now + 600_000 } } : {}) }) };
    }
  };
  ext = await startTestExtension({ initial });
  const attributions = new Map([1, 2, 3].map((n) => [token(n), secure(`app${n}`)] as const));
  const source = createSocketSource(ext.path, { id: 'ext' });
  app = startApp({ sources: [source], attributions, rows: 40, columns: 120, table: { lingerMs: 600_000 }, snapshotMs: 100 });
  const { instance } = app;
  await waitForFrame(instance, (f) => plain(f).includes(`${INITIAL} live · ${INITIAL / PENDING_EVERY} pending`), 60_000, 'the initial 100,000 flows');

  // 10,000 events/s: each 100 ms, 500 new flows and 500 ends of initial flows.
  let ended = 0;
  let endedPending = 0;
  for (let t = 0; t < TICKS; t++) {
    const started = Date.now();
    for (let k = 0; k < PER_TICK / 2; k++) {
      const n = t * (PER_TICK / 2) + k;
      ext.broadcast({ type: 'flow', flow: flow({ id: `n${n}`, time: Date.now(), token: token(1), remote: { address: '192.0.2.1', port: 1000 + (n % 1000) } }) });
      ext.broadcast({ type: 'end', id: `s${n}`, time: Date.now() });
      ended++;
      if (n % PENDING_EVERY === 0) endedPending++;
    }
    const wait = 100 - (Date.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const added = TICKS * (PER_TICK / 2);
  const live = INITIAL + added - ended;
  const pending = INITIAL / PENDING_EVERY - endedPending;
  const frame = await waitForFrame(instance, (f) => plain(f).includes(`${live} live · ${pending} pending · 0 blocked · 100% secure · ${ended} closed`), 60_000, 'exact counts after the burst');
  const lines = frame.split('\n');
  expect(lines.length).toBeLessThanOrEqual(39);
  // The flows waiting for a verdict are pinned on top; below them, newest first: a flow of the
  // last burst comes first.
  expect(plain(lines[4])).toMatch(/pending \d+s/);
  const port = Number(/192\.0\.2\.1:(\d+)/.exec(plain(lines.find((l) => l.includes('192.0.2.1:'))))?.[1]);
  expect(port).toBeGreaterThanOrEqual(1000 + ((added - PER_TICK / 2) % 1000));
  expect(port).toBeLessThanOrEqual(1000 + ((added - 1) % 1000));
  expect(app.store.current().flows.size).toBe(INITIAL + added);
});
