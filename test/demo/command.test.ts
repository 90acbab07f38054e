// `flowtop demo`: flags are checked, it says where it listens, serves until stopped, and cleans up.
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, type DemoIo } from '../../src/commands/demo.js';
import { UsageError, UserError } from '../../src/errors.js';
import { isType, TestClient } from './client.js';
import { CURL_A, flowLine, scenarioFile, scenarioText } from './fixtures.js';

function io(): DemoIo & { out: string[]; err: string[]; stop(): void; printed(match: RegExp): Promise<RegExpExecArray> } {
  let stop = (): void => undefined;
  const out: string[] = [];
  const waiters: Array<() => void> = [];
  return {
    out,
    err: [],
    write(text) {
      out.push(text);
      for (const wake of waiters.splice(0)) wake();
    },
    warn(text) {
      this.err.push(text);
    },
    stopped: new Promise<void>((resolve) => (stop = resolve)),
    stop: () => stop(),
    printed(match) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`nothing printed matching ${match}; got: ${out.join('')}`)), 5000);
        const check = (): void => {
          const found = match.exec(out.join(''));
          if (found) {
            clearTimeout(timer);
            resolve(found);
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

describe('flowtop demo', () => {
  it('serves a scenario file on the given socket until stopped, then removes the socket', async () => {
    const socket = join(tmpdir(), `flowtop-demo-cmd-${process.pid}.sock`);
    const bad = '{"type":"flow","at":5,';
    const path = scenarioFile(scenarioText([flowLine(0, { id: 'one', token: CURL_A }), bad]));
    const term = io();
    const done = run(['--scenario', path, '--socket', socket, '--speed', '5', '--loop'], term);
    const [, listening] = await term.printed(/listening on (\S+)\n/);
    expect(listening).toBe(socket);
    expect(term.out.join('')).toMatch(/scenario "test": 1 flows .* at 5× speed, looping/);
    expect(term.err.join('')).toMatch(/skipped .*test\.ndjson:\d+: not valid JSON/);

    const client = await TestClient.open(socket);
    await client.waitFor(isType('hello'));
    await client.waitFor(isType('flow', (m) => m.flow.id === 'one'));
    client.close();
    term.stop();
    expect(await done).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  it('refuses a socket path another extension is serving on, saying what to do', async () => {
    const socket = join(tmpdir(), `flowtop-demo-busy-${process.pid}.sock`);
    const first = io();
    const running = run(['--socket', socket], first);
    await first.printed(/listening on/);
    const attempt = run(['--socket', socket], io());
    await expect(attempt).rejects.toThrow(/cannot listen on .*flowtop-demo-busy/);
    await expect(attempt).rejects.toMatchObject({ nextStep: expect.stringMatching(/--socket PATH/) });
    first.stop();
    expect(await running).toBe(0);
  });

  it('lists the shipped scenarios', async () => {
    const term = io();
    expect(await run(['--list'], term)).toBe(0);
    const listing = term.out.join('');
    for (const name of ['default', 'linux', 'burst']) expect(listing).toMatch(new RegExp(`^${name}\\s+\\S`, 'm'));
    expect(listing).not.toMatch(/bad lines/);
  });

  it('refuses bad flags with a usage error that says what was wrong', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--speed', '0'], /--speed must be a number above 0/],
      [['--speed', 'fast'], /--speed must be a number above 0/],
      [['--speed', '1e9'], /at most/],
      [['--socket', ''], /--socket needs a path/],
      [['--bogus'], /unknown flag --bogus/],
      [['one', 'two'], /one scenario at a time/],
      [['--scenario', 'a', 'b'], /one scenario at a time/],
    ];
    for (const [argv, message] of cases) {
      const attempt = run(argv, io());
      await expect(attempt, argv.join(' ')).rejects.toThrow(message);
      await expect(attempt).rejects.toBeInstanceOf(UsageError);
    }
    await expect(run(['--scenario', 'no-such-scenario'], io())).rejects.toBeInstanceOf(UserError);
    await expect(run(['--scenario', 'no-such-scenario'], io())).rejects.toThrow(/no scenario named "no-such-scenario"/);
  });
});
