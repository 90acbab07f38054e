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

test('a source added later joins: its events and status reach subscribers already there; a second one with the same id is refused', async () => {
  const { memorySource } = await import('../ui/helpers/memory-source.js');
  const { Subject } = await import('rxjs');
  const first = memorySource('first');
  const merged = mergeSources([first]);
  const events: SourceEvent[] = [];
  const statuses: SourceStatus[][] = [];
  merged.events$.subscribe((e) => events.push(e));
  merged.statuses$.subscribe((s) => statuses.push(s));
  const later = new Subject<import('../../src/source/types.js').FlowSource>();
  const refused: string[] = [];
  merged.addFrom(later, (e) => refused.push(e.message));
  const host = memorySource('web-2');
  later.next(host);
  host.push({ type: 'end', id: 'x', time: 1 });
  host.setStatus({ state: 'disconnected', reason: 'gone' });
  expect(events.map((e) => e.source)).toEqual(['web-2']);
  expect(statuses.at(-1)?.map((s) => `${s.source} ${s.status.state}`)).toEqual(['first connecting', 'web-2 disconnected']);
  later.next(memorySource('web-2'));
  expect(refused).toEqual(['two flow sources share the id "web-2"; each needs its own']);
  expect(merged.send('web-2', { type: 'rules-list' })).toEqual({ ok: true });
  expect(host.sent).toEqual([{ type: 'rules-list' }]);
  merged.close();
});
