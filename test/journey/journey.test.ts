// The journey CI gates on: what a person does with the agent, the TUI and the CLI, in order, each
// step against the real programs (the agent in a network namespace, the TUI on a pseudo-terminal
// with its alternate screen, the CLI as a child process). Steps share one world and run in order;
// a step that fails can leave later ones failing too, so read the first failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipUnlessCapable, waitFor } from '../agent/helpers.js';
import { KEY, sleep, type PtyProcess } from './pty.js';
import type { VirtualScreen } from './screen.js';
import { closeJourney, openJourney, type Agent, type Program, type World } from './world.js';

const skip = skipUnlessCapable();
const NOBODY = { uid: 65534, gid: 65534 };
/** Ports: one per step, so a rule made in one step cannot decide another step's connection. */
const PORT = {
  once: 7001, always: 7002, python: 7003, deadline: 7004, filter: 7005, freeze: 7006, stale: 7007, user: 7008,
  untilExit: 7009, hour: 7010, session: 7011, portScope: 7012, bell: 7013,
};
const UDP_PORT = 7100;
const UDP_BLOCKED_PORT = 7101;
const REFUSED = /^error (ECONNREFUSED|ECONNABORTED|ECONNRESET)$/;
const AGENT_FLAGS = ['--timeout', '8s', '--default', 'block', '--block-mode', 'reject'];

let world: World;
let agent: Agent;
let tui: PtyProcess;
const programs: Program[] = [];

/** The screen row showing a flow to 127.0.0.1:port (-1: none). */
function rowOf(screen: VirtualScreen, port: number, extra?: RegExp): number {
  return screen.lines().findIndex((l) => l.includes(`127.0.0.1:${port}`) && (!extra || extra.test(l)));
}

function rowsOf(screen: VirtualScreen, port: number): string[] {
  return screen.lines().filter((l) => l.includes(`127.0.0.1:${port}`));
}

async function program(p: Promise<Program>): Promise<Program> {
  const started = await p;
  programs.push(started);
  return started;
}

/** Waits for the pending flow of node to `port`, then selects it with `n` (next pending). */
async function pendingSelected(port: number, name = 'node'): Promise<number> {
  await tui.waitFor(`the pending flow of ${name} to port ${port}`, (s) => rowOf(s, port, new RegExp(`${name}\\s.*pending \\d+s`)) >= 0);
  for (let i = 0; i < 8; i++) {
    const row = rowOf(tui.screen, port, /pending/);
    if (row >= 0 && tui.screen.cells(row).some((c) => c.inverse)) return row;
    await tui.type('n');
    await sleep(150);
  }
  throw new Error(`could not select the pending flow to port ${port}\n${tui.screen.text()}`);
}

/** Back to the flows view with no filter, no freeze, no prompt: each step starts from there. */
async function plainView(): Promise<void> {
  await tui.type([KEY.escape, KEY.escape, '1']);
  if (tui.screen.find('FROZEN') >= 0) await tui.type(' ');
  await tui.waitFor('the plain flows view', (s) => s.find('FROZEN') < 0 && s.find('[1:flows]') >= 0 && s.find('filter "') < 0);
}

/** `flowtop rules list --socket S`: the line of the rule whose remote mentions `port`. */
function listedRule(port: number): string | undefined {
  const listed = world.cli(['rules', 'list', '--socket', world.socket]);
  expect(listed.code, listed.err).toBe(0);
  return listed.out.split('\n').find((l) => new RegExp(`[: ]${port}\\b`).test(l));
}

describe.skipIf(skip)('journey: a person, the agent, the TUI and the CLI', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    ({ world, agent } = await openJourney({ tcp: Object.values(PORT), udp: [UDP_PORT, UDP_BLOCKED_PORT], agentFlags: () => AGENT_FLAGS }));
  }, 120_000);

  afterAll(() => closeJourney({ world, agent, tui, programs }));

  it('the agent runs and says so; flowtop opens its full screen connected to it', async () => {
    const status = world.cli(['agent', '--status', '--socket', world.socket]);
    expect(status.code, status.out + status.err).toBe(0);
    expect(status.out).toMatch(/^flowtop agent: running \(pid \d+/);
    tui = world.tui(['--socket', world.socket]);
    await tui.waitForText(/flowtop-agent .* connected/);
    expect(tui.screen.onAltScreen).toBe(true);
    expect(tui.screen.altEntered).toBe(1);
  });

  it('a new connection arrives pending with a countdown; allow once: the program connects', async () => {
    const prog = await program(world.connect(PORT.once));
    await pendingSelected(PORT.once);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
    await tui.waitFor('the flow allowed', (s) => rowOf(s, PORT.once, /allowed|open/) >= 0);
  });

  it('once means once: the same program asks again; block once refuses it', async () => {
    await plainView();
    const prog = await program(world.connect(PORT.once));
    await pendingSelected(PORT.once);
    await tui.type('b');
    expect(await prog.outcome()).toMatch(REFUSED);
    await tui.waitFor('the flow blocked', (s) => rowOf(s, PORT.once, /blocked/) >= 0);
  });

  it('allow always for this process and endpoint: the rule decides the next connection and is in the rules view', async () => {
    await plainView();
    const first = await program(world.connect(PORT.always));
    await pendingSelected(PORT.always);
    await tui.type('A');
    await tui.waitForText(/how long:/);
    await tui.type(['5', 'e']); // 5: always (where durations are offered); e: process + endpoint
    await tui.waitForText(/rule: allow .*7002.*, always/); // the choice is on screen before it is confirmed
    await tui.type(KEY.enter);
    expect(await first.outcome()).toBe('connected');
    // The rule decides the next connection at once: the program connects without waiting.
    const second = await program(world.connect(PORT.always));
    expect(await second.outcome(5000)).toBe('connected');
    await tui.type('3');
    await tui.waitFor('the rule in the rules view', (s) => s.lines().some((l) => /\ballow\b/.test(l) && l.includes('7002') && /always/.test(l)));
    await tui.type('1');
  });

  it('`flowtop rules list` beside the TUI shows that rule with its hits; a hit counts in both', async () => {
    await plainView();
    const hitsListed = (): number => {
      const line = listedRule(PORT.always);
      expect(line).toMatch(/\ballow\b.*\bnode\b/);
      const m = /\balways\s+(\d+)\b/.exec(line ?? '');
      expect(m, line).not.toBeNull();
      return Number(m?.[1]);
    };
    const hitsShown = async (n: number): Promise<void> => {
      await tui.type('3');
      await tui.waitFor(`hits ${n} in the rules view`, (s) => s.lines().some((l) => l.includes('7002') && new RegExp(`\\s${n}\\s+yes\\s*$`).test(l)));
      await tui.type('1');
    };
    const before = hitsListed();
    expect(before).toBeGreaterThanOrEqual(1); // the connection the rule decided by itself
    await hitsShown(before);
    const prog = await program(world.connect(PORT.always));
    expect(await prog.outcome(5000)).toBe('connected');
    await waitFor('the hit counted by the agent', () => hitsListed() === before + 1);
    await hitsShown(before + 1);
  });

  it('block always for a process: python3 is then refused at once, anywhere', async () => {
    await plainView();
    const py = await program(world.connectPython(PORT.python));
    await pendingSelected(PORT.python, 'python3');
    await tui.type('B');
    await tui.waitForText(/how long:/);
    await tui.type(['5', 'p']);
    await tui.waitForText(/rule: block .*→ anywhere.*, always/);
    await tui.type(KEY.enter);
    expect(await py.outcome()).toMatch(REFUSED);
    const again = await program(world.connectPython(PORT.deadline));
    expect(await again.outcome(5000)).toMatch(REFUSED);
  });

  it('nobody answers: the default action (block) at the deadline, and the program sees it', async () => {
    await plainView();
    const prog = await program(world.connect(PORT.deadline));
    await tui.waitFor('the pending flow', (s) => rowOf(s, PORT.deadline, /pending/) >= 0);
    expect(await prog.outcome(15_000)).toMatch(REFUSED);
    await tui.waitFor('the flow blocked', (s) => rowOf(s, PORT.deadline, /blocked/) >= 0);
  });

  it('a pending flow rings the bell once and is drawn apart from the other rows', async () => {
    await plainView();
    const bells = tui.screen.bells;
    const prog = await program(world.connect(PORT.bell));
    const row = await pendingSelected(PORT.bell);
    // The bell is written just after the frame that shows the row: wait for it, then check that
    // the flow rang exactly once.
    await tui.waitFor('the bell', (s) => s.bells > bells);
    await new Promise((r) => setTimeout(r, 300));
    expect(tui.screen.bells).toBe(bells + 1);
    const cells = tui.screen.cells(row);
    const looks = [...new Set(cells.map((c) => `${c.fg}/${c.bg}/${c.bold ? 'b' : ''}${c.inverse ? 'i' : ''}`))];
    // Yellow, as no settled row is: the foreground, or the background under the cursor.
    expect(cells.some((c) => ['33', '93'].includes(c.fg) || ['43', '103'].includes(c.bg)), looks.join(' ')).toBe(true);
    const settled = tui.screen.cells(rowOf(tui.screen, PORT.once));
    expect(settled.some((c) => ['33', '93'].includes(c.fg) || ['43', '103'].includes(c.bg))).toBe(false);
    void row;
    await pendingSelected(PORT.bell);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
  });

  it('user names: the USER column says root, not 0', async () => {
    await plainView();
    const prog = await program(world.connect(PORT.user));
    await pendingSelected(PORT.user);
    await tui.waitFor('root in the row', (s) => rowOf(s, PORT.user, /node\s+\d+\s+root\s/) >= 0);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
  });

  it('a filter that matches nothing never hides a pending flow', async () => {
    await plainView();
    await tui.type('/');
    await tui.type('port:1 ');
    await tui.type(KEY.enter);
    await tui.waitForText('filter "port:1');
    const prog = await program(world.connect(PORT.filter));
    await pendingSelected(PORT.filter);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
    await tui.type(KEY.escape);
  });

  it('freeze never hides a pending flow, and resumes', async () => {
    await plainView();
    await tui.type(' ');
    await tui.waitForText('FROZEN');
    const prog = await program(world.connect(PORT.freeze));
    await pendingSelected(PORT.freeze);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
    await tui.type(' ');
    await tui.waitFor('resumed', (s) => s.find('FROZEN') < 0);
  });

  it('until it exits: the same process connects again unasked; a new process of the same program is asked', async () => {
    await plainView();
    const c = await world.client(PORT.untilExit);
    programs.push(c);
    await pendingSelected(PORT.untilExit);
    await tui.type('A');
    await tui.waitForText(/how long:/);
    await tui.type(['2', 'p']);
    await tui.waitForText(/\(this process instance\) → anywhere.*until it exits/);
    await tui.type(KEY.enter);
    expect(await c.outcome()).toBe('connected');
    expect(await c.again()).toBe('connected'); // decided by the remembered verdict, no prompt
    const other = await program(world.connect(PORT.untilExit));
    await pendingSelected(PORT.untilExit);
    await tui.type('b');
    expect(await other.outcome()).toMatch(REFUSED);
  });

  it('for 1 h, this port: any node process may connect to that port; the rule shows when it ends', async () => {
    await plainView();
    const first = await program(world.connect(PORT.hour));
    await pendingSelected(PORT.hour);
    await tui.type('A');
    await tui.waitForText(/how long:/);
    await tui.type(['3', 'o']);
    await tui.waitForText(/rule: allow .*port 7010.*, until /);
    await tui.type(KEY.enter);
    expect(await first.outcome()).toBe('connected');
    const next = await program(world.connect(PORT.hour));
    expect(await next.outcome(5000)).toBe('connected');
    const line = listedRule(PORT.hour);
    expect(line).toMatch(/\ballow\b.*\buntil \d{4}-\d\d-\d\dT\d\d:\d\dZ/);
  });

  it('until restart, this endpoint (no domain without a host name): kept while the agent runs', async () => {
    await plainView();
    const first = await program(world.connect(PORT.session));
    await pendingSelected(PORT.session);
    await tui.type('A');
    await tui.waitForText(/how long:/);
    await tui.type(['4', 'd']);
    await tui.waitForText('no host name is known for this flow, so it has no domain');
    await tui.type('e');
    await tui.waitForText(/rule: allow .*7011.*\(until restart\)/);
    await tui.type(KEY.enter);
    expect(await first.outcome()).toBe('connected');
    const next = await program(world.connect(PORT.session));
    expect(await next.outcome(5000)).toBe('connected');
    expect(listedRule(PORT.session)).toBeDefined();
  });

  it('the agent restarts: flowtop says so, reconnects, and the rules come back and still decide', async () => {
    await plainView();
    const stale = await program(world.connect(PORT.stale));
    await tui.waitFor('a flow pending at the restart', (s) => rowOf(s, PORT.stale, /pending/) >= 0);
    expect(await agent.stop()).toBe(0);
    await tui.waitForText(/reconnecting|disconnected/);
    agent = await world.startAgent(AGENT_FLAGS);
    await tui.waitForText(/flowtop-agent .* connected/, 20_000);
    // Rules survived and decide.
    const prog = await program(world.connect(PORT.always));
    expect(await prog.outcome(5000)).toBe('connected');
    await tui.type('3');
    await tui.waitFor('both always rules in the rules view', (s) => s.lines().filter((l) => /\b(allow|block)\b/.test(l) && /always/.test(l)).length >= 2);
    await tui.type('1');
    void stale;
  });

  it('after the restart the until-restart rule is gone and its endpoint asks again; the 1 h rule stays', async () => {
    expect(listedRule(PORT.session)).toBeUndefined();
    expect(listedRule(PORT.hour)).toBeDefined();
    await plainView();
    const prog = await program(world.connect(PORT.session));
    await pendingSelected(PORT.session);
    await tui.type('a');
    expect(await prog.outcome()).toBe('connected');
  });

  it('after the restart no row from before it still claims to be pending', async () => {
    await tui.waitFor('the stale flow no longer pending', (s) => rowOf(s, PORT.stale, /pending/) < 0, 10_000);
  });

  it('`flowtop list --json` beside the TUI lists the agent\'s flows', () => {
    const r = world.cli(['list', '--json', '--wait', '800', '--socket', world.socket]);
    expect(r.code, r.err).toBe(0);
    const snapshot = JSON.parse(r.out) as { flows: Array<{ remote: { port: number } }> };
    expect(snapshot.flows.some((f) => f.remote.port === PORT.always)).toBe(true);
  });

  it('a UDP conversation is one flow, decided once', async () => {
    await plainView();
    const prog = await program(world.sendUdp(UDP_PORT, 5));
    await pendingSelected(UDP_PORT);
    await tui.type('a');
    expect(await prog.outcome()).toBe('sent');
    try {
      await tui.waitFor('one UDP row', (s) => rowsOf(s, UDP_PORT).length === 1 && / udp /.test(rowsOf(s, UDP_PORT)[0] ?? ''));
    } catch (error) {
      // What the agent itself holds for this conversation, beside what the TUI shows.
      const listed = world.cli(['list', '--json', '--wait', '500', '--socket', world.socket]);
      const flows = listed.code === 0 ? (JSON.parse(listed.out) as { flows: Array<{ remote: { port: number } }> }).flows.filter((f) => f.remote.port === UDP_PORT) : listed.err;
      throw new Error(`${(error as Error).message}\nthe agent's flows to port ${UDP_PORT}: ${JSON.stringify(flows)}`);
    }
  });

  it('a blocked UDP conversation stays one flow and counts what it tried', async () => {
    await plainView();
    // Datagrams keep coming for 12 s: those after the verdict count on the same flow.
    const prog = await program(world.sendUdp(UDP_BLOCKED_PORT, 120));
    await pendingSelected(UDP_BLOCKED_PORT);
    await tui.type('b');
    await tui.waitFor('one blocked row with a count', (s) => {
      const rows = rowsOf(s, UDP_BLOCKED_PORT);
      const m = rows.length === 1 ? /blocked ×(\d+)/.exec(rows[0] ?? '') : null;
      return m !== null && Number(m[1]) >= 2;
    });
    expect(await prog.outcome(30_000)).toBe('sent');
  });

  it('quit: the alternate screen is left, the cursor shown, exit status 0', async () => {
    await tui.type('q');
    expect(await tui.waitForExit()).toBe(0);
    expect(tui.screen.altLeft).toBe(1);
    expect(tui.screen.onAltScreen).toBe(false);
    expect(tui.screen.cursorVisible).toBe(true);
    expect(tui.screen.text()).not.toContain('127.0.0.1:7001');
  });

  it('as nobody, the agent socket is refused once, with the fix, and nothing loops', async () => {
    const t = world.tui(['--socket', world.socket], { user: NOBODY, cols: 200 });
    await t.waitForText(/(permission denied|the agent refused this user) \(sudo usermod -aG flowtop \$USER, then log in again\)/);
    await sleep(2000);
    expect(t.output()).not.toContain('reconnecting');
    t.kill();
    const listed = world.cli(['list', '--json', '--wait', '300', '--socket', world.socket], {});
    expect(listed.code).toBe(0); // root may
  });

  it('the CLI beside the agent: a bad flag, a rule for everything, a closed pipe', () => {
    const bad = world.cli(['rules', 'list', '--socket']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe('flowtop: rules: --socket needs a value\n  run `flowtop rules --help` for the usage\n');
    const any = world.cli(['rules', 'add', '--allow', '--socket', world.socket]);
    expect(any.code).toBe(2);
    expect(any.err).toMatch(/names no process and no remote.*--any/);
  });

  it('a second agent on the same machine refuses to start, and the first keeps deciding', async () => {
    const second = world.runAgentOnce(['--socket', `${world.socket}.2`, '--rules', `${world.rules}.2`]);
    expect(second.code).not.toBe(0);
    expect(second.err).toContain(`another flowtop agent is running in this network namespace: pid ${agent.proc.pid}, socket ${world.socket}`);
    const prog = await program(world.connect(PORT.always));
    expect(await prog.outcome(5000)).toBe('connected');
  });
});
