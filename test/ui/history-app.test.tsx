import './helpers/force-color.js';
// The history in the real app (Root + store + key runner): key 4 opens the history view over a real
// history file (written by the real writer), w and h and Enter and Esc walk it, events recorded while
// flowtop runs reach the status line and the bell, and the processes view draws each program's
// traffic over the last minutes from the live counters.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Attribution } from '../../src/attribution/types.js';
import { openHistorySource, type HistorySource } from '../../src/app/history-source.js';
import { program, writeConnections } from '../history/helpers/fixture.js';
import { flow, hello, secure, token } from '../state/fixtures.js';
import { startApp, type Started } from './helpers/app.js';
import { KEY, plain, press, ready, waitForFrame } from './helpers/keys.js';
import { memorySource, type MemorySource } from './helpers/memory-source.js';

let app: Started | undefined;
const dirs: string[] = [];
const sources: HistorySource[] = [];
afterEach(() => {
  app?.stop();
  app = undefined;
  for (const s of sources.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const MIN = 60_000;
const HOUR = 60 * MIN;
const firefox = program('firefox');
const curl = program('curl');

function historyFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-happ-'));
  dirs.push(d);
  return join(d, 'history.db');
}

function connect(src: MemorySource): void {
  const h = hello(['verdicts', 'end-flows', 'rules', 'bytes', 'host-names']);
  src.setStatus({ state: 'connected', hello: h });
  src.push(h);
}

describe('history in the app', () => {
  it('4 opens the history view; w, h, Enter and Esc walk it; the footer says which keys', async () => {
    const path = historyFile();
    const now = Date.now();
    writeConnections(path, [
      { at: now - 3 * HOUR, program: firefox, host: 'video.example', rx: 9_000_000, tx: 1000 },
      { at: now - 20 * MIN, program: firefox, host: 'news.example', rx: 500_000, tx: 1000 },
      { at: now - 10 * MIN, program: curl, host: 'api.example', rx: 2_000, tx: 300 },
    ], now - 2 * 24 * HOUR);
    const history = openHistorySource({ flows: 'agent' }, process.env, { thread: 'inline', agentPath: path });
    sources.push(history);
    const src = memorySource();
    app = startApp({ sources: [src], history, rows: 24, columns: 120 });
    connect(src);
    await ready(app.instance);
    const opened = plain(await press(app.instance, '4', (f) => plain(f).includes('firefox') && plain(f).includes('curl')));
    expect(opened).toContain('4:history]');
    expect(opened).toContain('Programs by traffic · last 24 h');
    expect(opened).toContain('w 1h [24h] 7d 30d');
    expect(opened.indexOf('firefox')).toBeLessThan(opened.indexOf('curl'));
    expect(opened).toMatch(/firefox .*[▁▂▃▄▅▆▇█].* 9\.1M /);

    // 1 h: only what moved in the last hour.
    await press(app.instance, 'w', (f) => plain(f).includes('last 7 d'));
    await press(app.instance, 'w', (f) => plain(f).includes('last 30 d'));
    const hour = plain(await press(app.instance, 'w', (f) => plain(f).includes('last 1 h') && plain(f).includes('489K')));
    expect(hour).toMatch(/firefox .* 489K /);

    // Enter on firefox: its hosts; Esc: back to the programs with firefox still selected.
    const hosts = plain(await press(app.instance, KEY.enter, (f) => plain(f).includes('Hosts firefox talked to') && plain(f).includes('news.example')));
    expect(hosts).not.toContain('video.example'); // three hours ago: outside the hour
    expect(hosts).not.toContain('api.example');
    expect(hosts).toContain('Esc back');
    const back = await press(app.instance, KEY.escape, (f) => plain(f).includes('Programs by traffic'));
    expect(plain(back.split('\n').find((l) => l.includes('\x1b[7m')))).toContain('firefox');

    // h: hosts ranked; a/b say where they act.
    const byHost = plain(await press(app.instance, 'h', (f) => plain(f).includes('Hosts by traffic') && plain(f).includes('news.example')));
    expect(byHost).toContain('api.example');
    const refused = plain(await press(app.instance, 'a', (f) => plain(f).includes('act on a flow or a process')));
    expect(refused).toContain('(1 or 2)');
    await press(app.instance, '1', (f) => plain(f).includes('[1:flows]'));
  });

  it('says on the status line, and rings, when the history records a new program or a changed binary', async () => {
    const path = historyFile();
    writeConnections(path, [{ at: Date.now() - HOUR, program: program('ssh', 'a'.repeat(64)), host: 'git.example', rx: 1, tx: 1 }], Date.now() - HOUR);
    const history = openHistorySource({ flows: 'agent' }, process.env, { thread: 'inline', agentPath: path });
    sources.push(history);
    const rung: string[][] = [];
    const src = memorySource();
    app = startApp({ sources: [src], history, alertEvents: (d) => rung.push([...d]) });
    connect(src);
    await ready(app.instance);
    // Recorded after flowtop started: a program never seen, then a known path with another binary.
    writeConnections(path, [{ at: Date.now(), program: program('newtool'), host: 'x.example', rx: 1, tx: 1 }], Date.now());
    const first = plain(await waitForFrame(app.instance, (f) => plain(f).includes('new program'), 6_000, 'the first-seen note'));
    expect(first).toContain('new program: /usr/bin/newtool connected for the first time');
    expect(rung).toHaveLength(1);
    writeConnections(path, [{ at: Date.now(), program: program('ssh', 'b'.repeat(64)), host: 'git.example', rx: 1, tx: 1 }], Date.now() + 5);
    const changed = plain(await waitForFrame(app.instance, (f) => plain(f).includes('binary CHANGED'), 6_000, 'the changed note'));
    expect(changed).toContain('binary CHANGED: /usr/bin/ssh changed');
    expect(rung).toHaveLength(2);
    expect(rung[1]![0]).toContain('/usr/bin/ssh changed');
  }, 20_000);

  it('says why when there is no history, and never fails', async () => {
    const path = join(historyFile(), '..', 'absent.db');
    const history = openHistorySource({ flows: 'monitor' }, { ...process.env, XDG_STATE_HOME: join(path, '..') }, { thread: 'inline' });
    sources.push(history);
    const src = memorySource();
    app = startApp({ sources: [src], history });
    connect(src);
    await ready(app.instance);
    const frame = plain(await press(app.instance, '4', (f) => plain(f).includes('No history to show')));
    expect(frame).toContain(`no history yet: ${join(path, '..', 'flowtop', 'history.db')} does not exist`);
    await press(app.instance, 'w', (f) => plain(f).includes('last 7 d'));
    expect(plain(app.instance.lastFrame())).toContain('No history to show');
  });

  it('the processes view draws each program\'s traffic over the last minutes from the live counters', async () => {
    const src = memorySource();
    const attributions = new Map<string, Attribution>([[token(1), secure('curl')], [token(2), secure('quietd')]]);
    app = startApp({ sources: [src], attributions, rows: 20, columns: 140 });
    connect(src);
    src.push({ type: 'flow', flow: flow({ id: 'c1', token: token(1), time: Date.now() }) });
    src.push({ type: 'flow', flow: flow({ id: 'q1', token: token(2), time: Date.now() }) });
    await ready(app.instance);
    await press(app.instance, '2', (f) => plain(f).includes('LAST 3 MIN') && plain(f).includes('quietd'));
    // The first sample is the baseline; bytes that move after it are drawn.
    await new Promise((r) => setTimeout(r, 2_300));
    src.push({ type: 'bytes', time: Date.now(), counters: [{ id: 'c1', rx: 50_000, tx: 1_000 }] });
    await new Promise((r) => setTimeout(r, 2_300));
    src.push({ type: 'bytes', time: Date.now(), counters: [{ id: 'c1', rx: 90_000, tx: 2_000 }] });
    const frame = plain(await waitForFrame(app.instance, (f) => /curl .*[▁▂▃▄▅▆▇█]/.test(plain(f)), 6_000, 'a mark in curl\'s row'));
    const quiet = frame.split('\n').find((l) => l.includes('quietd'))!;
    expect(quiet).not.toMatch(/[▁▂▃▄▅▆▇█]/);
  }, 20_000);
});
