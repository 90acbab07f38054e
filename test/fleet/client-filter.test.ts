// `host:NAME` in the filter: a fleet host's name selects that host's flows; any other name is the
// remote host, as before. A fleet host's rows take its agent's identity, never a local lookup.
import { expect, test } from 'vitest';
import { FlowFilter } from '../../src/state/filter.js';
import { initialTable, reduce } from '../../src/state/reducer.js';
import type { TableState } from '../../src/state/types.js';
import { flowOf } from './helpers/test-agent.js';

function fleetTable(): TableState {
  let s = initialTable();
  const fleet = { role: 'host' as const, label: 'nats://127.0.0.1:4222' };
  s = reduce(s, { type: 'source', source: 'web-1', fleet });
  s = reduce(s, { type: 'source', source: 'web-2', fleet });
  return reduce(s, {
    type: 'events',
    events: [
      { source: 'web-1', message: { type: 'flow', flow: flowOf('a', { remote: { address: '93.184.216.34', port: 443 }, remoteHost: { name: 'www.example.com', source: 'dns' } }) } },
      { source: 'web-2', message: { type: 'flow', flow: flowOf('a', { remote: { address: '10.0.0.9', port: 22 }, identity: undefined }) } },
      { source: 'web-2', message: { type: 'flow', flow: flowOf('b', { remote: { address: '93.184.216.34', port: 443 }, remoteHost: { name: 'www.example.com', source: 'dns' } }) } },
    ],
  });
}

const keys = (s: TableState, query: string): string[] => {
  const keep = new FlowFilter().predicate(s, { query, onlyInsecure: false });
  return [...s.flows.values()].filter((r) => !keep || keep(r)).map((r) => r.key).sort();
};

test('host:NAME picks a fleet host\'s flows; another name is still the remote host', () => {
  const s = fleetTable();
  expect(keys(s, 'host:web-2')).toEqual(['web-2#a', 'web-2#b']);
  expect(keys(s, 'host:WEB-1')).toEqual(['web-1#a']);
  expect(keys(s, 'host:example.com')).toEqual(['web-1#a', 'web-2#b']);
  expect(keys(s, 'host:web-2 port:443')).toEqual(['web-2#b']);
});

test('a fleet host\'s flow shows its agent\'s identity, or says none was established', () => {
  const s = fleetTable();
  expect(s.flows.get('web-1#a')!.attribution).toMatchObject({ trust: 'secure', name: 'curl', identity: 'package:curl:/usr/bin/curl' });
  expect(s.flows.get('web-2#a')!.attribution).toMatchObject({ trust: 'insecure', reason: { message: expect.stringMatching(/agent on web-2 established no code identity/) } });
  // A local answer for the same token bytes says nothing about another machine's process.
  const after = reduce(s, { type: 'attributions', updates: [{ key: flowOf('x').token!, attribution: { trust: 'secure', name: 'local-thing' } }] });
  expect(after.flows.get('web-1#a')!.attribution.name).toBe('curl');
});

test('with only a fleet, the history view says each host keeps its own', async () => {
  const { openHistorySource } = await import('../../src/app/history-source.js');
  const history = openHistorySource({ flows: 'fleet' }, process.env, { thread: 'inline' });
  const page = await history.page({ window: '1h', by: 'process', points: 10 } as Parameters<typeof history.page>[0], Date.now());
  expect(page).toMatchObject({ ok: false, unavailable: { reason: 'each fleet host keeps its history on its own machine' } });
  history.close();
});
