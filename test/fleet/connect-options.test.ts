// The --nats* flags: every one checked before anything connects, with an error a person can act on.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsLinkConfig, parseMaxAge } from '../../src/fleet/connect-options.js';
import { parseAgentFlags } from '../../src/commands/agent.js';

const dir = mkdtempSync(join(tmpdir(), 'flowtop-nats-flags-'));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('NATS connection flags', () => {
  it('allows a plain connection to loopback only, unless the user insists', () => {
    expect(natsLinkConfig('agent', { nats: 'nats://127.0.0.1:4222' })?.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(natsLinkConfig('agent', { nats: 'localhost' })?.servers).toEqual(['nats://localhost:4222']);
    expect(natsLinkConfig('agent', { nats: 'nats://[::1]:4223' })?.servers).toEqual(['nats://[::1]:4223']);
    expect(() => natsLinkConfig('agent', { nats: 'nats://10.0.0.5:4222' })).toThrow(/plain connection to a non-loopback address: use tls:\/\/, or --nats-insecure/);
    expect(() => natsLinkConfig('agent', { nats: 'nats.example.com' })).toThrow(/non-loopback/);
    expect(natsLinkConfig('agent', { nats: 'nats://10.0.0.5:4222', 'nats-insecure': true })?.insecure).toBe(true);
    expect(natsLinkConfig('agent', { nats: 'tls://nats.example.com:4443' })).toMatchObject({ tls: true, servers: ['tls://nats.example.com:4443'] });
  });

  it('refuses mixed, malformed and credential-carrying URLs', () => {
    expect(() => natsLinkConfig('agent', { nats: 'tls://a:1,nats://127.0.0.1:2' })).toThrow(/mixes tls/);
    expect(() => natsLinkConfig('agent', { nats: 'http://127.0.0.1:4222' })).toThrow(/use nats:\/\/ or tls:\/\//);
    expect(() => natsLinkConfig('agent', { nats: 'nats://bob:secret@127.0.0.1' })).toThrow(/no user or password in the URL/);
    expect(() => natsLinkConfig('agent', { nats: ' , ' })).toThrow(/needs a server URL/);
  });

  it('checks credentials files and allows one way to authenticate', () => {
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-creds': join(dir, 'missing') })).toThrow(/--nats-creds .*no such file/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-creds': file('bad.creds', 'hello') })).toThrow(/not a NATS .creds file/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-user': 'alice' })).toThrow(/needs --nats-password-file/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-password-file': file('p', 'x') })).toThrow(/needs --nats-user/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-user': 'alice', 'nats-password-file': file('empty', '\n') })).toThrow(/is empty/);
    expect(natsLinkConfig('agent', { nats: 'localhost', 'nats-user': 'alice', 'nats-password-file': file('pw', 's3cret\nignored\n') })).toMatchObject({ user: 'alice', password: 's3cret' });
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-user': 'a', 'nats-password-file': file('pw2', 'x'), 'nats-nkey': file('k', 'x') })).toThrow(/pick one way/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-nkey': file('k2', 'not a seed') })).toThrow(/no user nkey seed/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-ca': file('ca', 'x') })).toThrow(/--nats-ca is for tls/);
  });

  it('needs --nats for every other fleet flag', () => {
    expect(natsLinkConfig('agent', {})).toBeUndefined();
    expect(() => natsLinkConfig('agent', { 'nats-insecure': true })).toThrow(/--nats-insecure needs --nats URL/);
    expect(() => parseAgentFlags(['--host-name', 'a'], {})).toThrow(/--host-name needs --nats URL/);
    expect(() => parseAgentFlags(['--nats', 'localhost', '--host-name', 'a.b'], {})).toThrow(/--host-name "a.b"/);
    expect(() => parseAgentFlags(['--nats', 'localhost', '--nats-prefix', 'a.b'], {})).toThrow(/--nats-prefix/);
    expect(() => parseAgentFlags(['--nats', 'localhost', '--nats-max-age', '10s'], {})).toThrow(/--nats-max-age must be a duration between 1m and 365d/);
    expect(parseAgentFlags(['--nats', 'localhost', '--host-name', 'web-1', '--nats-max-age', '7d'], {}).fleet).toMatchObject({ host: 'web-1', maxAgeMs: 7 * 86_400_000 });
    expect(parseMaxAge('agent', '90m')).toBe(90 * 60_000);
  });
});
