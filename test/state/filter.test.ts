// The filter matches what the flows view shows: ports, address:port, state words, user names, and
// exact key:value terms, combined with fuzzy text.
import { describe, expect, it } from 'vitest';
import { initialTable, reduce } from '../../src/state/reducer.js';
import { FlowFilter } from '../../src/state/filter.js';
import { editLine } from '../../src/state/line-edit.js';
import { parseQuery } from '../../src/state/query.js';
import type { TableState } from '../../src/state/types.js';
import { ev, flow, secure, token } from './fixtures.js';

/** The table from the report: every REMOTE is 127.0.0.1:8000; curl, a root-owned python, some
 *  blocked, one pending, one UDP, one inbound. */
function table(): TableState {
  let s = initialTable();
  const local = { address: '127.0.0.1', port: 0 };
  const remote = { address: '127.0.0.1', port: 8000 };
  s = reduce(s, {
    type: 'events',
    events: [
      ev({ type: 'flow', flow: flow({ id: 'c1', token: token(1), remote, local: { ...local, port: 41000 }, verdict: { action: 'allow', by: 'user' } }) }),
      ev({ type: 'flow', flow: flow({ id: 'c2', token: token(1), remote, local: { ...local, port: 41001 }, verdict: { action: 'block', by: 'rule' } }) }),
      ev({ type: 'flow', flow: flow({ id: 'p1', token: token(2), remote, local: { ...local, port: 41002 }, pending: { deadline: 10_000_000 } }) }),
      ev({ type: 'flow', flow: flow({ id: 'p2', token: token(2), remote, local: { ...local, port: 41003 }, protocol: 'udp', verdict: { action: 'block', by: 'default' } }) }),
      ev({ type: 'flow', flow: flow({ id: 'w1', token: token(3), remote: { address: '93.184.216.34', port: 443 }, remoteHost: { name: 'www.example.com', source: 'dns' }, local: { ...local, port: 41004 } }) }),
      ev({ type: 'flow', flow: flow({ id: 'i1', token: token(3), direction: 'inbound', remote: { address: '10.0.0.9', port: 51000 }, local: { address: '10.0.0.2', port: 22 } }) }),
      ev({ type: 'end', id: 'c2', time: 2_000_000 }),
    ],
  });
  return reduce(s, {
    type: 'attributions',
    updates: [
      { key: token(1), attribution: secure('curl', { uid: 1000, user: 'alice' }) },
      { key: token(2), attribution: secure('python3', { uid: 0, user: 'root', pid: 4242 }) },
      { key: token(3), attribution: secure('firefox', { uid: 1001, user: undefined }) },
    ],
  });
}

const ids = (s: TableState, query: string): string[] => {
  const keep = new FlowFilter().predicate(s, { query, onlyInsecure: false });
  return [...s.flows.values()].filter(keep ?? (() => true)).map((r) => r.flow.id).sort();
};

describe('filter', () => {
  const s = table();

  it('finds a port and an address:port as the REMOTE column shows them', () => {
    expect(ids(s, '8000')).toEqual(['c1', 'c2', 'p1', 'p2']);
    expect(ids(s, '127.0.0.1:8000')).toEqual(['c1', 'c2', 'p1', 'p2']);
    expect(ids(s, 'www.example.com:443')).toEqual(['w1']);
  });

  it('finds state words, including a blocked flow that has ended', () => {
    expect(ids(s, 'blocked')).toEqual(['c2', 'p2']);
    expect(ids(s, 'pending')).toEqual(['p1']);
  });

  it('finds user names, and a uid where the system has no name', () => {
    expect(ids(s, 'root')).toEqual(['p1', 'p2']);
    expect(ids(s, 'user:alice')).toEqual(['c1', 'c2']);
    expect(ids(s, 'user:1001')).toEqual(['i1', 'w1']);
    expect(ids(s, 'user:0')).toEqual(['p1', 'p2']);
  });

  it('matches fuzzily only when nothing contains the text: crl finds curl', () => {
    expect(ids(s, 'crl')).toEqual(['c1', 'c2']);
    expect(ids(s, 'frefox')).toEqual(['i1', 'w1']);
    expect(ids(s, 'zzzqqq')).toEqual([]);
  });

  it('key:value terms are exact and combine with text (all terms must match)', () => {
    expect(ids(s, 'port:8000')).toEqual(['c1', 'c2', 'p1', 'p2']);
    expect(ids(s, 'port:800')).toEqual([]);
    expect(ids(s, 'port:22')).toEqual(['i1']); // the local port of an inbound flow
    expect(ids(s, 'state:pending')).toEqual(['p1']);
    expect(ids(s, 'state:blocked')).toEqual(['c2', 'p2']);
    expect(ids(s, 'proto:udp')).toEqual(['p2']);
    expect(ids(s, 'host:example.com')).toEqual(['w1']);
    expect(ids(s, 'host:93.184.216.34')).toEqual(['w1']);
    expect(ids(s, 'dir:in')).toEqual(['i1']);
    expect(ids(s, 'pid:4242')).toEqual(['p1', 'p2']);
    expect(ids(s, 'curl state:blocked')).toEqual(['c2']);
    expect(ids(s, 'python proto:tcp')).toEqual(['p1']);
    // A half-typed term does not hide everything.
    expect(ids(s, 'curl port:')).toEqual(['c1', 'c2']);
  });

  it('parses terms: unknown keys and addresses stay text', () => {
    expect(parseQuery('PORT:443 127.0.0.1:80 [::1]:53 Protocol:UDP')).toEqual([
      { kind: 'field', key: 'port', value: '443' },
      { kind: 'text', text: '127.0.0.1:80' },
      { kind: 'text', text: '[::1]:53' },
      { kind: 'field', key: 'proto', value: 'udp' },
    ]);
  });
});

describe('filter line editing', () => {
  it('acts on every editing key in one read, as a shell line does', () => {
    expect(editLine('curl', '\x7f\x7f\x7f')).toBe('c');
    expect(editLine('cu', 'rx\x7fl')).toBe('curl');
    expect(editLine('port:443 curl', '\x17')).toBe('port:443 ');
    expect(editLine('port:443 curl  ', '\x17')).toBe('port:443 ');
    expect(editLine('port:443 curl', '\x15')).toBe('');
    expect(editLine('abc', '\x08\x08')).toBe('a');
    expect(editLine('', '\x7f\x7f')).toBe('');
    // Other controls are never inserted.
    expect(editLine('a', '\x1b\x01\u009bb')).toBe('ab');
  });
});
