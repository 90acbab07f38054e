// The history view's journey: the real agent records into a history file in a network namespace,
// programs connect, and the real TUI on a pseudo-terminal (told of that file by the agent's hello)
// shows them under key 4, drills into one, and says on its status line when a program connects for
// the first time while it runs.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCapable } from '../agent/helpers.js';
import { KEY, type PtyProcess } from './pty.js';
import { closeJourney, openJourney, type Agent, type Program, type World } from './world.js';

const skip = skipUnlessCapable();
const PORT = 7301;

let world: World;
let agent: Agent;
let tui: PtyProcess;
let history: string;
const programs: Program[] = [];

describe.skipIf(skip)('journey: the history view over the agent\'s history', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    // Nobody answers in this journey: the default allows after a second.
    ({ world, agent } = await openJourney({ tcp: [PORT], agentFlags: (w) => ['--history', (history = join(w.dir, 'history.db')), '--timeout', '1s', '--default', 'allow'] }));
  }, 120_000);

  afterAll(() => closeJourney({ world, agent, tui, programs }));

  it('4 shows the connections the agent recorded, ranked; Enter shows the hosts; Esc back; w changes the window', async () => {
    for (let i = 0; i < 2; i++) {
      const p = await world.connect(PORT);
      programs.push(p);
      expect(await p.outcome()).toBe('connected');
    }
    // No --history-db: the TUI reads the file the agent names in its hello.
    tui = world.tui(['--socket', world.socket]);
    await tui.waitForText(/flowtop-agent .* connected/);
    await tui.type('4');
    await tui.waitForText('Programs by traffic');
    // The file the agent named, not the default /var/lib/flowtop/history.db.
    await tui.waitForText(history);
    // The two connections are in the ranking: under node, or under "(owner not found)" when the
    // agent's lookup of the new process took longer than the recorder waits (see docs/history.md).
    const row = await tui.waitFor('the recorded connections in the ranking', (s) => {
      const at = s.lines().findIndex((l) => /^\S?\s+(node|\(owner not found\))\s/.test(l));
      return at >= 0 ? at : undefined;
    }, 30_000);
    expect(tui.screen.find('w 1h [24h] 7d 30d')).toBeGreaterThanOrEqual(0);
    expect(tui.screen.cells(row).some((c) => c.inverse)).toBe(true);
    // Its hosts: the server in the namespace.
    await tui.type(KEY.enter);
    await tui.waitForText(/Hosts .* talked to/);
    // Under node: the server's address. Under "(owner not found)": the flows themselves were
    // completed with their program later, which the view says.
    await tui.waitForText(/^\S?\s+127\.0\.0\.1 .* [12]\s*$|none left without an owner: their program was found after/);
    await tui.type(KEY.escape);
    await tui.waitForText('Programs by traffic');
    await tui.type('w');
    await tui.waitForText('last 7 d');
  });

  it('a program connecting for the first time while the TUI runs is said on the status line', async () => {
    const p = await world.connectPython(PORT);
    programs.push(p);
    expect(await p.outcome()).toBe('connected');
    await tui.waitForText(/new program: .*python3.* connected for the first time/, 30_000);
  });
});
