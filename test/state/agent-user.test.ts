// The uid an extension sends with a flow is named locally only for this machine's extension, and the
// user column sorts by the name as shown.
import { describe, expect, it } from 'vitest';
import { hintedUserNames, userLabel } from '../../src/state/derive.js';
import { initialTable, reduce } from '../../src/state/reducer.js';
import { sortFlows } from '../../src/state/sort.js';
import type { TableState } from '../../src/state/types.js';
import { ev, flow, hello, token } from './fixtures.js';

const NAMES = new Map([[0, 'root'], [1000, 'alice']]);

function table(): TableState {
  let s = initialTable({ userName: (uid) => NAMES.get(uid) });
  s = reduce(s, { type: 'source', source: 'web-1', fleet: { role: 'host', label: 'nats://127.0.0.1:4222' } });
  s = reduce(s, { type: 'attributions', updates: [{ key: token(1), attribution: { trust: 'gone', pid: 7 } }] });
  return reduce(s, {
    type: 'events',
    events: [
      ev(hello()),
      ev({ type: 'flow', flow: flow({ id: 'here-root', token: token(1), uid: 0 }) }),
      ev({ type: 'flow', flow: flow({ id: 'here-alice', token: token(1), uid: 1000 }) }),
      ev({ type: 'flow', flow: flow({ id: 'here-none', token: token(1), uid: 4242 }) }),
      // A fleet host's flow with no identity from its agent: its uid, a number of another machine.
      { source: 'web-1', message: { type: 'flow', flow: flow({ id: 'there-root', token: token(1), uid: 0 }) } },
    ],
  });
}

describe('the uid an extension sent with a flow', () => {
  it('is named for this machine\'s extension and left a number for a fleet host', () => {
    const s = table();
    const hinted = hintedUserNames(s);
    const label = (key: string) => userLabel(s.flows.get(key)!, hinted);
    expect(label('ext#here-root')).toBe('root');
    expect(label('ext#here-alice')).toBe('alice');
    expect(label('ext#here-none')).toBe('4242');
    expect(label('web-1#there-root')).toBe('0');
    // Asked directly, the fleet host's uid gets no local name either.
    expect(hinted(s.flows.get('web-1#there-root')!)).toBeUndefined();
  });

  it('sorts the user column by the name as shown', () => {
    const s = table();
    const order = sortFlows(s.flows.values(), { column: 'user', reverse: false }, undefined, hintedUserNames(s)).map((r) => r.key);
    expect(order).toEqual(['web-1#there-root', 'ext#here-none', 'ext#here-alice', 'ext#here-root']);
  });
});
