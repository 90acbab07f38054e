// The history view's frames, read from a real history file written through the real writer:
// ranking, sparklines, first-seen / changed marks, drill-down, ASCII mode, and the words it says
// when there is no file to read.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCallback, useReducer, useRef } from 'react';
import { Text, useInput, type Key } from 'ink';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { openHistorySource, type HistorySource } from '../../src/app/history-source.js';
import { useHistoryPage } from '../../src/app/use-history.js';
import { initialHistoryView, pageQueryOf, reduceHistoryView, cursorOf } from '../../src/state/history-view.js';
import { HistoryView, historyHints, historyPoints } from '../../src/ui/HistoryView.js';
import { program, writeConnections } from '../history/helpers/fixture.js';
import { KEY, plain, press, ready, waitForFrame } from './helpers/keys.js';

const dirs: string[] = [];
const sources: HistorySource[] = [];
afterEach(() => {
  for (const s of sources.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'flowtop-hview-'));
  dirs.push(d);
  return join(d, 'history.db');
}

const CLOCK = { now: () => Date.now() };
const MIN = 60_000;
const HOUR = 60 * MIN;
const curl = program('curl');
const firefox = program('firefox');
const sshOld = { ...program('ssh', 'a'.repeat(64)) };
const sshNew = { ...program('ssh', 'b'.repeat(64)) };

/** The view with the keys the app gives it (w, h, Enter, Esc, arrows), reading through `source`. */
function Harness({ source, width, ascii }: { source: HistorySource; width: number; ascii: boolean }) {
  const [state, dispatch] = useReducer(reduceHistoryView, undefined, initialHistoryView);
  const load = useHistoryPage(source, pageQueryOf(state, historyPoints(width, state)), CLOCK);
  const entries = load.page?.entries ?? [];
  // Through a ref set during render: a key acts on what is on screen (as in Root).
  const latest = useRef<(input: string, key: Key) => void>(() => {});
  latest.current = (input, key) => {
    const c = cursorOf(state);
    if (input === 'w') dispatch({ type: 'window-next' });
    else if (input === 'h') dispatch({ type: 'toggle-by' });
    else if (key.downArrow) dispatch({ type: 'select', index: Math.min(c.index + 1, entries.length - 1), key: entries[c.index + 1]?.key });
    else if (key.return) {
      const e = entries[c.index];
      if (e && state.by === 'process' && !state.drill) dispatch({ type: 'drill', identity: e.key, label: e.label });
    } else if (key.escape) dispatch({ type: 'back' });
  };
  const onInput = useCallback((input: string, key: Key) => latest.current(input, key), []);
  useInput(onInput);
  return (
    <>
      <HistoryView width={width} height={14} ascii={ascii} now={Date.now()} state={state} load={load} path={source.path} />
      <Text>{historyHints(state).join(' | ')}</Text>
    </>
  );
}

function seed(path: string): void {
  const now = Date.now();
  // ssh's old binary was seen two days ago; today a new one with the same path (a changed binary).
  writeConnections(path, [{ at: now - 48 * HOUR, program: sshOld, host: 'git.example', rx: 10, tx: 10 }], now - 48 * HOUR);
  writeConnections(path, [
    { at: now - 20 * HOUR, program: firefox, host: 'video.example', rx: 50_000_000, tx: 100_000 },
    { at: now - 2 * HOUR, program: firefox, host: 'news.example', rx: 2_000_000, tx: 20_000 },
    { at: now - 30 * MIN, program: firefox, host: 'video.example', rx: 30_000_000, tx: 50_000 },
  ], now - 25 * HOUR);
  // Written a quarter of an hour ago: ssh's new binary (changed) and curl's first connection (new).
  writeConnections(path, [
    { at: now - 10 * MIN, program: sshNew, host: 'git.example', rx: 4_000, tx: 9_000 },
    { at: now - 5 * MIN, program: curl, addr: '203.0.113.5', rx: 700, tx: 80 },
  ], now - 15 * MIN);
}

describe('history view', () => {
  it('ranks programs by traffic over 24 h with sparklines and marks, drills into a program\'s hosts and back', async () => {
    const path = file();
    seed(path);
    const source = openHistorySource({ path, flows: 'agent' }, process.env, { thread: 'inline' });
    sources.push(source);
    const app = render(<Harness source={source} width={100} ascii={false} />);
    const frame = plain(await waitForFrame(app, (f) => f.includes('firefox'), 5_000, 'the ranking'));
    const lines = frame.split('\n');
    expect(lines[0]).toContain('Programs by traffic · last 24 h');
    expect(lines[0]).toContain('one mark = 1 h');
    const order = ['firefox', 'ssh', 'curl'].map((n) => lines.findIndex((l) => l.includes(` ${n} `)));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const firefoxLine = lines[order[0]!]!;
    expect(firefoxLine).toMatch(/[▁▂▃▄▅▆▇█]/);
    expect(firefoxLine).toContain('78M'); // 82.2 MB in MiB
    expect(firefoxLine).toMatch(/\s3\s/); // three connections
    expect(lines[order[1]!]).toContain('CHANGED');
    expect(lines[order[2]!]).toContain('new');
    expect(frame).toContain('w 1h [24h] 7d 30d');

    await ready(app);
    await press(app, KEY.enter, (f) => plain(f).includes('Hosts firefox talked to'));
    await waitForFrame(app, (f) => plain(f).includes('video.example') && plain(f).includes('news.example'), 5_000, 'firefox\'s hosts');
    const drilled = plain(app.lastFrame());
    expect(drilled.indexOf('video.example')).toBeLessThan(drilled.indexOf('news.example'));
    expect(drilled).not.toContain('git.example');
    expect(drilled).toContain('Esc back');
    await press(app, KEY.escape, (f) => plain(f).includes('Programs by traffic'));

    // 1 h: only what moved in the last hour.
    await press(app, 'w', (f) => plain(f).includes('last 7 d'));
    await press(app, 'w', (f) => plain(f).includes('last 30 d'));
    await press(app, 'w', (f) => plain(f).includes('last 1 h'));
    const hour = plain(await waitForFrame(app, (f) => !plain(f).includes('reading') && plain(f).includes('last 1 h'), 5_000, 'the 1 h page'));
    expect(hour).toContain('firefox');
    expect(hour).toContain('29M');
    app.unmount();
  });

  it('draws everything in ASCII in ASCII mode', async () => {
    const path = file();
    seed(path);
    const source = openHistorySource({ path, flows: 'agent' }, process.env, { thread: 'inline' });
    sources.push(source);
    const app = render(<Harness source={source} width={100} ascii={true} />);
    const frame = plain(await waitForFrame(app, (f) => f.includes('firefox'), 5_000, 'the ranking'));
    expect(frame).toMatch(/^[\x20-\x7e\n]*$/);
    expect(frame).toMatch(/firefox +[a-zA-Z]* *[_.\-~=+*#]/);
    expect(frame).toContain('Programs by traffic | last 24 h');
    app.unmount();
  });

  it('says why when there is no history to read, and what to do', async () => {
    const path = join(file(), '..', 'nothing-here.db');
    const source = openHistorySource({ flows: 'agent' }, process.env, { thread: 'inline', agentPath: path });
    sources.push(source);
    const app = render(<Harness source={source} width={100} ascii={false} />);
    const frame = plain(await waitForFrame(app, (f) => f.includes('No history'), 5_000, 'the explanation'));
    expect(frame).toContain(`no history yet: ${path} does not exist`);
    expect(frame).toContain('the agent records there while it runs');
    app.unmount();
  });

  it('refuses a file that is not a history, saying so', async () => {
    const path = file();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, 'not a database at all, just text\n');
    const source = openHistorySource({ path, flows: 'monitor' }, process.env, { thread: 'inline' });
    sources.push(source);
    const app = render(<Harness source={source} width={140} ascii={false} />);
    const frame = plain(await waitForFrame(app, (f) => f.includes('No history'), 5_000, 'the refusal'));
    expect(frame).toContain('is not a SQLite database');
    app.unmount();
  });
});
