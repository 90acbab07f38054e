// Attack: an extension floods the TUI with `rule-changed` messages (100,000 and more, without end).
// The TUI once spent over 11 minutes at 100 % CPU, deaf to q, Ctrl-C and SIGTERM. Whatever it is
// busy with, the real TUI process on a real pseudo-terminal must quit promptly on SIGTERM and on
// Ctrl-C, leaving the alternate screen and showing the cursor again.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { install, type Installation } from '../cli/install.js';
import { PtyProcess, terminalEnv } from '../journey/pty.js';
import { reportAttack } from './report.js';

const LEAVE_ALT_SCREEN = '\x1b[?1049l';
const SHOW_CURSOR = '\x1b[?25h';
/** How long a quit may take while flooded; a person would press again after this. */
const QUIT_WITHIN_MS = 2_000;

function missing(): string | undefined {
  if (process.platform !== 'linux') return 'Linux only';
  if (spawnSync('sh', ['-c', 'command -v python3']).status !== 0) return 'needs python3 (pty)';
  return undefined;
}
const why = missing();
if (why && process.env['CI'] === 'true') throw new Error(`flood test cannot run: ${why}`);
const suite = why ? describe.skip : describe;

let inst: Installation;
let dir: string;
beforeAll(() => {
  if (why) return;
  inst = install();
  dir = mkdtempSync(join(tmpdir(), 'flowtop-flood-'));
}, 120_000);
afterAll(() => {
  inst?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Flooder {
  path: string;
  /** Bytes of rule-changed messages written so far. */
  written(): number;
  close(): Promise<void>;
}

/** An extension that answers subscribe with rule-changed messages, as fast as the client reads. */
async function startFlooder(path: string): Promise<Flooder> {
  const hello = { type: 'hello', protocol: 1, extension: { name: 'flooder', version: '1' }, platform: 'linux', host: 'h', capabilities: ['rules', 'verdicts'], tokenKind: 'linux-pidfd-v1' };
  let written = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.write(JSON.stringify(hello) + '\n');
    let n = 0;
    const pump = () => {
      // One chunk of 500 messages at a time, more when the client has read it: without end.
      while (!socket.destroyed) {
        let chunk = '';
        for (let i = 0; i < 500; i++, n++) {
          const rule = { id: `r${n}`, action: n % 2 ? 'block' : 'allow', endpoint: { address: '192.0.2.1', port: 1 + (n % 65535) }, duration: { kind: 'always' }, enabled: true, created: 1, hits: 0, note: `flood ${n}` };
          chunk += JSON.stringify({ type: 'rule-changed', op: 'added', rule }) + '\n';
        }
        written += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
    };
    socket.once('data', () => pump()); // the subscribe
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    written: () => written,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function floodedTui(name: string): Promise<{ tui: PtyProcess; flooder: Flooder }> {
  const flooder = await startFlooder(join(dir, `${name}.sock`));
  const tui = new PtyProcess([...inst.flowtop, '--socket', flooder.path], { cols: 120, rows: 30, env: terminalEnv() });
  await tui.waitForText('flowtop', 20_000);
  // Busy: several megabytes of rule changes have gone in (tens of thousands of rules), or the TUI has
  // been reading them for a while (one that chokes on them reads slowly).
  const started = Date.now();
  const busy = () => flooder.written() >= 8_000_000 || (flooder.written() >= 1_000_000 && Date.now() - started > 6_000);
  while (!busy() && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
  expect(busy()).toBe(true);
  return { tui, flooder };
}

suite('a rule-changed flood', () => {
  it('cannot keep the TUI from quitting on SIGTERM or Ctrl-C', async () => {
    let tries = 0;
    let bypasses = 0;
    let crashes = 0;
    const timings: string[] = [];
    for (const how of ['SIGTERM', 'Ctrl-C'] as const) {
      tries++;
      const { tui, flooder } = await floodedTui(how === 'SIGTERM' ? 'term' : 'ctrlc');
      const before = tui.output().length;
      const sent = Date.now();
      if (how === 'SIGTERM') tui.child.kill('SIGTERM'); // the pty host passes it on to flowtop
      else tui.write('\x03');
      const quick = await Promise.race([tui.exited.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), QUIT_WITHIN_MS))]);
      const took = Date.now() - sent;
      if (!quick) {
        bypasses++; // the flood kept the person from quitting
        tui.kill();
      }
      await tui.exited;
      await flooder.close();
      const after = tui.output().slice(before);
      const restored = after.includes(LEAVE_ALT_SCREEN) && after.lastIndexOf(SHOW_CURSOR) > after.lastIndexOf('\x1b[?25l');
      if (quick && !restored) bypasses++; // quit, but left the terminal in the alternate screen
      // A clean quit: exit 0 (Ctrl-C), or after restoring the terminal the signal itself is re-raised
      // (Ink's exit hook does that) so the shell sees "terminated by SIGTERM". Anything else crashed.
      if (quick && !/pty-host: (exit (0|130|143)|signal (2|15))\b/.test(tui.hostErrors())) crashes++;
      timings.push(`${how}: ${quick ? `${took} ms` : `still running after ${QUIT_WITHIN_MS} ms`}, ${tui.hostErrors().trim()}`);
    }
    process.stderr.write(`${timings.join('\n')}\n`);
    reportAttack('rule-changed-flood-quit', { tries, bypasses, crashes });
    expect(timings.join('\n'), timings.join('\n')).not.toMatch(/still running/);
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 120_000);
});
