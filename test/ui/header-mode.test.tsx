// The header tells a person what the agent does when it dies and to flows nobody answers.
import './helpers/force-color.js';
import { afterEach, expect, it } from 'vitest';
import { hello } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { plain, waitForFrame } from './helpers/keys.js';
import { memorySource } from './helpers/memory-source.js';

let app: Started | undefined;
afterEach(() => app?.stop());

it("shows the agent's fail-open/closed mode, default action, deadline and owner method", async () => {
  const src = memorySource();
  app = startApp({ sources: [src], attributions: new Map() });
  const h = hello(undefined, { mode: { failOpen: false, defaultAction: 'block', timeoutMs: 30_000, attribution: 'bpf-cookie' } });
  src.setStatus({ state: 'connected', hello: h });
  src.push(h);
  const frame = plain(await waitForFrame(app.instance, (f) => f.includes('fail-closed')));
  const first = frame.split('\n')[0] ?? '';
  expect(first).toContain('fail-closed');
  expect(first).toContain('unanswered: block after 30s');
  expect(first).toContain('owners: bpf-cookie');
});
