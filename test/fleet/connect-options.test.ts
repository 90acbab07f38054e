// The --nats* flags: every one checked before anything connects, with an error a person can act on.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natsLinkConfig, parseMaxAge } from '../../src/fleet/connect-options.js';
import { parseAgentFlags } from '../../src/commands/agent.js';
import { fleetOptionsFrom } from '../../src/fleet/client-options.js';
import { natsConnectionOptions } from '../../src/fleet/nats-connect.js';

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

describe('the one loopback rule, for the agent and the client alike', () => {
  // Names that look like loopback addresses but are names a resolver could send anywhere.
  const lookalikes = ['nats://127.0.0.300:4222', 'nats://127.evil.example:4222', 'nats://localhost.example:4222', 'nats://127.0.0.1.nip.io:4222', 'nats://LOCALHOST.:4222', 'nats://127.1:4222', 'nats://[::ffff:7f00:1]:4222', 'nats://[::2]:4222'];

  it('refuses a plain link to anything but 127.0.0.0/8, ::1 and localhost', () => {
    for (const url of lookalikes) {
      expect(() => natsLinkConfig('agent', { nats: url }), url).toThrow(/plain connection to a non-loopback address/);
      // The client's own check once let `127.0.0.300` through (four dot-separated numbers of up to three
      // digits); it is the same check now.
      expect(() => fleetOptionsFrom({ nats: [url] }), url).toThrow(/plain connection to a non-loopback address/);
    }
    for (const url of ['nats://127.0.0.1:4222', 'nats://127.8.9.10:4222', 'nats://localhost:4222', 'nats://[::1]:4222', 'nats://[0:0:0:0:0:0:0:1]:4222']) {
      expect(natsLinkConfig('agent', { nats: url })?.tls, url).toBe(false);
      expect(fleetOptionsFrom({ nats: [url] })?.link.tls, url).toBe(false);
    }
  });

  it('gives the client the flags the agent has: several servers in one --nats, an nkey, a CA; and refuses what is not a file', () => {
    expect(fleetOptionsFrom({ nats: ['nats://127.0.0.1:4222,nats://127.0.0.1:4223'] })?.link.servers).toEqual(['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']);
    expect(() => fleetOptionsFrom({ nats: ['nats://127.0.0.1:4222,nats://10.0.0.5:4222'] })).toThrow(/10\.0\.0\.5.*non-loopback/);
    const seed = `SU${'A'.repeat(56)}`;
    expect(fleetOptionsFrom({ nats: ['localhost'], 'nats-nkey': file('seed', `${seed}\n`) })?.link.nkeySeed).toEqual(new TextEncoder().encode(seed));
    expect(() => fleetOptionsFrom({ nats: ['tls://nats.example:4222'], 'nats-ca': file('ca.pem', 'nothing') })).toThrow(/holds no PEM certificate/);
    // A FIFO or a device would block the read or never end.
    expect(() => fleetOptionsFrom({ nats: ['localhost'], 'nats-creds': '/dev/zero' })).toThrow(/not a regular file/);
    expect(() => natsLinkConfig('agent', { nats: 'localhost', 'nats-password-file': '/dev/null', 'nats-user': 'a' })).toThrow(/not a regular file/);
    expect(() => fleetOptionsFrom({ nats: ['localhost'], 'nats-nkey': dir })).toThrow(/not a regular file/);
  });

  it('does not follow servers a cluster announces over a plain link unless the user allowed plain links', () => {
    // A node's gossip could otherwise move a loopback-only plain link to another machine.
    const plain = fleetOptionsFrom({ nats: ['nats://127.0.0.1:4222'] })!.link;
    expect(natsConnectionOptions(plain, 'flowtop client').ignoreClusterUpdates).toBe(true);
    expect(natsConnectionOptions(fleetOptionsFrom({ nats: ['nats://127.0.0.1:4222'], 'nats-insecure': true })!.link, 'x').ignoreClusterUpdates).toBe(false);
    expect(natsConnectionOptions(fleetOptionsFrom({ nats: ['tls://nats.example:4222'] })!.link, 'x').ignoreClusterUpdates).toBe(false);
  });
});
