// The version is written once, in package.json: `flowtop --version` says what it says.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, vi } from 'vitest';
import { main } from '../../src/cli.js';

test('flowtop --version prints the version in package.json', async () => {
  const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (written.push(String(chunk)), true));
  try {
    expect(await main(['--version'])).toBe(0);
  } finally {
    spy.mockRestore();
  }
  expect(written.join('')).toBe(`flowtop ${version}\n`);
});
