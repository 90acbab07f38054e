// The alert written for new pending flows: one BEL per burst, and an OSC 9 notice on request whose
// text from outside cannot smuggle escape sequences into the terminal.
import { describe, expect, it } from 'vitest';
import { BEL, createBell } from '../../src/app/bell.js';
import { TableRow } from '../../src/state/row.js';
import type { FlowRow } from '../../src/state/types.js';
import { flow, secure } from '../state/fixtures.js';

function row(name: string, host: string): FlowRow {
  const f = flow({ remote: { address: '192.0.2.9', port: 8000 }, remoteHost: { name: host, source: 'dns' }, pending: { deadline: 1 } });
  return new TableRow(`s#${f.id}`, f, secure(name), {}, { rx: 0, tx: 0, rxRate: 0, txRate: 0, bytesTime: undefined }, 1);
}

describe('bell', () => {
  it('rings once for a burst, again after the gap', () => {
    const written: string[] = [];
    let now = 0;
    const ring = createBell({ write: (t) => written.push(t), now: () => now, notify: false });
    ring([row('curl', 'example.com')]);
    now = 200;
    ring([row('wget', 'example.org')]);
    expect(written).toEqual([BEL]);
    now = 1_300;
    ring([row('wget', 'example.org')]);
    ring([]);
    expect(written).toEqual([BEL, BEL]);
  });

  it('with --notify, an OSC 9 notice names the flow; control characters from outside are replaced', () => {
    const written: string[] = [];
    const ring = createBell({ write: (t) => written.push(t), now: () => 0, notify: true });
    ring([row('evil\x1b]0;owned\x07', 'example.com'), row('curl', 'example.org')]);
    expect(written).toHaveLength(1);
    expect(written[0]).toBe(`${BEL}\x1b]9;flowtop: evil?]0;owned? → example.com:8000 waits for a verdict (+1 more)\x1b\\`);
  });
});

describe('bell for history events', () => {
  it('rings for events as for pending flows, sharing the gap, and names the first event in the notice', () => {
    const written: string[] = [];
    let now = 0;
    const ring = createBell({ write: (t) => written.push(t), now: () => now, notify: true });
    ring.events(['/usr/bin/curl changed: sha256 was 1234…, now 5678…', 'x']);
    expect(written).toHaveLength(1);
    expect(written[0]).toBe(`${BEL}\x1b]9;flowtop: /usr/bin/curl changed: sha256 was 1234…, now 5678… (+1 more)\x1b\\`);
    now = 500;
    ring([row('curl', 'example.com')]);
    expect(written).toHaveLength(1);
    now = 2_000;
    ring.events([]);
    expect(written).toHaveLength(1);
    ring.events(['rule r1 blocked its first connection\x1b[2J']);
    expect(written[1]).not.toContain('\x1b[2J');
  });
});
