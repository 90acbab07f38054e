// Two real extensions merged: events keep their source, verdicts go back to the right extension.
import { afterEach, expect, test } from 'vitest';
import { ExtensionServer } from '../../src/protocol/server.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import { createSocketSource } from '../../src/source/socket-source.js';
import { mergeSources, type SourceStatus } from '../../src/source/merge.js';
import type { SourceEvent } from '../../src/source/types.js';
import { flow, hello } from '../protocol/samples.js';
import { socketDir, waitFor } from '../protocol/wire.js';

const dir = socketDir();
const servers: ExtensionServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function extension(name: string, got: ClientMessage[]): Promise<ExtensionServer> {
  const s = new ExtensionServer({ path: dir.path(name), hello: { ...hello, host: name }, onSubscribe: () => [flow('same-id')], onMessage: (_c, m) => got.push(m) });
  await s.listen();
  servers.push(s);
  return s;
}

test('flows from two extensions keep their source; send goes to the one named', async () => {
  const gotA: ClientMessage[] = [];
  const gotB: ClientMessage[] = [];
  await extension('a.sock', gotA);
  await extension('b.sock', gotB);
  const merged = mergeSources([createSocketSource(dir.path('a.sock'), { id: 'a' }), createSocketSource(dir.path('b.sock'), { id: 'b' })]);
  const events: SourceEvent[] = [];
  const statuses: SourceStatus[][] = [];
  const s1 = merged.events$.subscribe((e) => events.push(e));
  const s2 = merged.statuses$.subscribe((s) => statuses.push(s));
  await waitFor(() => events.filter((e) => e.message.type === 'flow').length === 2, 5000, 'a flow from each');
  expect(events.filter((e) => e.message.type === 'flow').map((e) => e.source).sort()).toEqual(['a', 'b']);
  await waitFor(() => statuses.at(-1)?.every((s) => s.status.state === 'connected') === true, 5000, 'both connected');
  expect(statuses.at(-1)?.map((s) => s.source)).toEqual(['a', 'b']);

  expect(merged.send('b', { type: 'verdict', id: 'same-id', action: 'block', remember: 'once' })).toEqual({ ok: true });
  expect(merged.send('c', { type: 'rules-list' })).toEqual({ ok: false, error: 'no source "c"' });
  await waitFor(() => gotB.length === 1, 5000, 'verdict at b');
  expect(gotA).toEqual([]);
  s1.unsubscribe();
  s2.unsubscribe();
  merged.close();
  dir.cleanup();
});

test('two sources with one id are refused', () => {
  const a = createSocketSource('/nonexistent/x.sock');
  expect(() => mergeSources([a, createSocketSource('/nonexistent/x.sock')])).toThrow(/share the id/);
});
