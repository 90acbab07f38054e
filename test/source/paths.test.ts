// Which sockets flowtop connects to.
import { expect, test } from 'vitest';
import { defaultSocketPath, explicitSocketPaths, socketPathsFrom } from '../../src/source/paths.js';
import { UsageError } from '../../src/errors.js';

test('platform defaults', () => {
  expect(defaultSocketPath('linux')).toBe('/run/flowtop/flowtop.sock');
  expect(defaultSocketPath('darwin')).toBe('/var/run/flowtop.sock');
});

test('--socket flags win over FLOWTOP_SOCKET, which wins over the default', () => {
  const env = { FLOWTOP_SOCKET: '/tmp/env.sock' };
  expect(socketPathsFrom(['/tmp/a.sock', '/tmp/b.sock', '/tmp/a.sock'], env, 'linux')).toEqual(['/tmp/a.sock', '/tmp/b.sock']);
  expect(socketPathsFrom([], env, 'linux')).toEqual(['/tmp/env.sock']);
  expect(socketPathsFrom([], {}, 'darwin')).toEqual(['/var/run/flowtop.sock']);
  expect(explicitSocketPaths([], { FLOWTOP_SOCKET: '' }, 'linux')).toEqual([]);
});

test('unusable paths are usage errors that say why', () => {
  expect(() => socketPathsFrom([' '], {}, 'linux')).toThrow(UsageError);
  const long = `/tmp/${'x'.repeat(120)}.sock`;
  expect(() => socketPathsFrom([long], {}, 'linux')).toThrow(/at most 107/);
  expect(() => socketPathsFrom([], { FLOWTOP_SOCKET: long }, 'darwin')).toThrow(/FLOWTOP_SOCKET path is \d+ bytes; a Unix socket path holds at most 103/);
});
