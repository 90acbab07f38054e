// `flowtop list --nats URL --json|--jsonl`: every host's flows merged, each with its host; and the
// NATS flags refused with words before anything connects.
import { Writable } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runList } from '../../src/commands/list.js';
import { fleetOptionsFrom, parseDuration } from '../../src/fleet/client-options.js';
import { skipWithoutNats, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestAgent, flowOf } from './helpers/test-agent.js';

const skip = skipWithoutNats();
let server: NatsServer;
const agents: TestAgent[] = [];

beforeAll(async () => {
  if (!skip) server = await startNatsServer();
});
afterAll(async () => {
  for (const a of agents) await a.stop();
  await server?.stop();
});

function sink(): Writable & { text: string } {
  const out = new Writable({
    write(chunk, _enc, done) {
      out.text += String(chunk);
      done();
    },
  }) as Writable & { text: string };
  out.text = '';
  return out;
}

test.skipIf(skip)('list --nats --json prints the flows of every host, each with its host', async () => {
  for (const host of ['alpha', 'beta']) {
    const a = await TestAgent.start({ url: server.url, host, prefix: 'list' });
    agents.push(a);
    await a.announce();
    await a.publish([{ type: 'flow', flow: flowOf('f1', host === 'beta' ? { pending: { deadline: Date.now() + 60_000 } } : {}) }]);
  }
  const out = sink();
  const fleet = fleetOptionsFrom({ nats: [server.url], 'nats-prefix': 'list' })!;
  const code = await runList({ mode: 'json', sockets: [], fleet, waitMs: 1_500 }, out);
  expect(code).toBe(0);
  const snap = JSON.parse(out.text) as { flows: Array<{ source: string; host?: string; id: string; state: string; process: string }>; sources: Array<{ id: string; fleet?: string; status: string }> };
  const flows = snap.flows.map((f) => `${f.host}/${f.id}/${f.state}/${f.process}`).sort();
  expect(flows).toEqual(['alpha/f1/open/curl', 'beta/f1/pending/curl']);
  expect(snap.sources.filter((s) => s.fleet === 'host').map((s) => `${s.id} ${s.status}`).sort()).toEqual(['alpha connected', 'beta connected']);
});

test('the NATS flags are checked before anything connects', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftflags-'));
  expect(fleetOptionsFrom({})).toBeUndefined();
  expect(() => fleetOptionsFrom({ 'nats-user': 'bob' })).toThrow(/--nats-user needs --nats URL/);
  expect(() => fleetOptionsFrom({ replay: '5m' })).toThrow(/--replay needs --nats URL/);
  expect(() => fleetOptionsFrom({ nats: ['nats://10.1.2.3:4222'] })).toThrow(/plain connection to a non-loopback address/);
  expect(fleetOptionsFrom({ nats: ['nats://10.1.2.3:4222'], 'nats-insecure': true })?.link.servers).toEqual(['nats://10.1.2.3:4222']);
  expect(fleetOptionsFrom({ nats: ['tls://nats.example.net:4222'] })?.link.tls).toBe(true);
  expect(fleetOptionsFrom({ nats: ['127.0.0.1:4222'] })?.link.servers).toEqual(['nats://127.0.0.1:4222']);
  expect(() => fleetOptionsFrom({ nats: ['http://127.0.0.1:4222'] })).toThrow(/nats:\/\/ or tls:\/\//);
  expect(() => fleetOptionsFrom({ nats: ['nats://bob:secret@127.0.0.1:4222'] })).toThrow(/no user or password in the URL/);
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-prefix': 'a.b' })).toThrow(/--nats-prefix/);
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-user': 'bob' })).toThrow(/needs --nats-password-file/);
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-user': 'bob', 'nats-password-file': join(dir, 'none') })).toThrow(/no such file/);
  writeFileSync(join(dir, 'pw'), 'secret\n');
  expect(fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-user': 'bob', 'nats-password-file': join(dir, 'pw') })).toMatchObject({ user: 'bob', link: { user: 'bob', password: 'secret' } });
  // The request subject ends in the user name: a name that is not one subject token is refused.
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-user': 'bob.smith', 'nats-password-file': join(dir, 'pw') })).toThrow(/subject token/);
  writeFileSync(join(dir, 'creds'), 'hello');
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], 'nats-creds': join(dir, 'creds') })).toThrow(/not a NATS .creds file/);
  expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1'], replay: 'soon' })).toThrow(/--replay needs a duration/);
  expect(parseDuration('--replay', '5m')).toBe(300_000);
  expect(parseDuration('--replay', '0')).toBe(0);
});
