// `flowtop agent` flags: defaults, validation with clear messages.
import { describe, expect, it } from 'vitest';
import { parseAgentFlags, parseDuration } from '../../src/commands/agent.js';
import { UsageError } from '../../src/errors.js';

describe('flowtop agent flags', () => {
  it('defaults: fail-open, allow after 30 s, reject, queue 7231, the system socket and rules file', () => {
    expect(parseAgentFlags([], {})).toMatchObject({
      socket: '/run/flowtop/flowtop.sock', rules: '/etc/flowtop/rules.json', defaultAction: 'allow', timeoutMs: 30_000,
      blockMode: 'reject', failOpen: true, queueNum: 7231, inbound: false, noBpf: false, status: false,
    });
  });

  it('the socket: --socket, else FLOWTOP_SOCKET (as clients look for it), else the system socket', () => {
    expect(parseAgentFlags([], { FLOWTOP_SOCKET: '/tmp/env.sock' }).socket).toBe('/tmp/env.sock');
    expect(parseAgentFlags(['--socket', '/tmp/flag.sock'], { FLOWTOP_SOCKET: '/tmp/env.sock' }).socket).toBe('/tmp/flag.sock');
    expect(parseAgentFlags([], { FLOWTOP_SOCKET: '' }).socket).toBe('/run/flowtop/flowtop.sock');
    expect(() => parseAgentFlags([], { FLOWTOP_SOCKET: `/tmp/${'x'.repeat(120)}` })).toThrow(/FLOWTOP_SOCKET path is \d+ bytes/);
  });

  it('reads every flag', () => {
    expect(parseAgentFlags(['--socket', '/tmp/s', '--rules', '/tmp/r.json', '--default', 'block', '--timeout', '500ms',
      '--block-mode', 'drop', '--fail-closed', '--queue-num', '12', '--inbound', '--cgroup', '/sys/fs/cgroup/x', '--no-bpf'])).toMatchObject({
      socket: '/tmp/s', rules: '/tmp/r.json', defaultAction: 'block', timeoutMs: 500, blockMode: 'drop', failOpen: false,
      queueNum: 12, inbound: true, cgroup: '/sys/fs/cgroup/x', noBpf: true,
    });
    expect(parseAgentFlags(['--queue-bypass']).failOpen).toBe(true);
  });

  it('history: recorded into /var/lib/flowtop/history.db unless moved (made absolute) or turned off', () => {
    expect(parseAgentFlags([]).history).toBe('/var/lib/flowtop/history.db');
    expect(parseAgentFlags(['--history', '/srv/h.db']).history).toBe('/srv/h.db');
    expect(parseAgentFlags(['--history', 'h.db']).history).toBe(`${process.cwd()}/h.db`);
    expect(parseAgentFlags(['--no-history']).history).toBeUndefined();
  });

  it.each([
    [['--default', 'maybe'], /--default must be allow or block/],
    [['--block-mode', 'kill'], /--block-mode must be drop or reject/],
    [['--timeout', 'soon'], /--timeout must be a duration/],
    [['--timeout', '10ms'], /--timeout must be a duration/],
    [['--queue-num', '70000'], /--queue-num must be an integer 0..65535/],
    [['--queue-num', '1.5'], /--queue-num/],
    [['--fail-closed', '--queue-bypass'], /contradict/],
    [['--history', '/x.db', '--no-history'], /--history and --no-history contradict/],
    [['--history', '/var/lib/'], /--history must name a file/],
    [['--history'], /--history/],
    [['--bogus'], /unknown flag --bogus/],
    [['stray'], /agent:/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseAgentFlags(argv)).toThrow(UsageError);
    expect(() => parseAgentFlags(argv)).toThrow(message);
  });

  it('parses durations in ms, s and m', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('-1s')).toBeUndefined();
    expect(parseDuration('1h')).toBeUndefined();
  });
});
