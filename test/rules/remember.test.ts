// The rule a remembered verdict leaves: the same for the agent, the demo and the TUI.
import { describe, expect, it } from 'vitest';
import { registrableDomain, rememberedRule, type RememberSubject } from '../../src/rules/remember.js';

const identity = { kind: 'sha256' as const, value: 'ab'.repeat(32), label: 'curl' };
const subject: RememberSubject = {
  token: Buffer.from('instance').toString('base64'),
  identity,
  protocol: 'tcp',
  direction: 'outbound',
  remoteAddress: '151.101.1.1',
  remotePort: 443,
  remoteHost: 'Push.Services.Mozilla.org.',
};

describe('registrableDomain', () => {
  it('uses the public suffix list, private suffixes included', () => {
    expect(registrableDomain('www.bbc.co.uk')).toBe('bbc.co.uk');
    expect(registrableDomain('push.services.mozilla.org')).toBe('mozilla.org');
    expect(registrableDomain('someone.github.io')).toBe('someone.github.io');
    expect(registrableDomain('co.uk')).toBeUndefined();
    expect(registrableDomain('localhost')).toBeUndefined();
    expect(registrableDomain('192.0.2.1')).toBeUndefined();
  });
});

describe('rememberedRule', () => {
  const rule = (choice: Partial<Parameters<typeof rememberedRule>[0]>, s: RememberSubject = subject) =>
    rememberedRule({ action: 'allow', remember: 'always', scope: 'process', ...choice }, s, 1_000);

  it('each scope names its part of the remote end', () => {
    expect(rule({ scope: 'process' })).toEqual({ action: 'allow', identity, protocol: 'tcp', direction: 'outbound', duration: { kind: 'always' } });
    expect(rule({ scope: 'host' })).toMatchObject({ endpoint: { host: 'push.services.mozilla.org' } });
    expect(rule({ scope: 'domain' })).toMatchObject({ endpoint: { domain: 'mozilla.org' } });
    expect(rule({ scope: 'port' })).toMatchObject({ endpoint: { port: 443 } });
    expect(rule({ scope: 'endpoint' })).toMatchObject({ endpoint: { host: 'push.services.mozilla.org', port: 443 } });
  });

  it('without a host name: the address for host and endpoint, and no domain at all', () => {
    const bare = { ...subject, remoteHost: undefined };
    expect(rule({ scope: 'host' }, bare)).toMatchObject({ endpoint: { address: '151.101.1.1' } });
    expect(rule({ scope: 'endpoint' }, bare)).toMatchObject({ endpoint: { address: '151.101.1.1', port: 443 } });
    expect(rule({ scope: 'domain' }, bare)).toMatch(/no host name is known/);
  });

  it('durations: until its process exits, for a while, until restart, always', () => {
    expect(rule({ remember: 'process' })).toMatchObject({ duration: { kind: 'process', token: subject.token } });
    expect(rule({ remember: 'process' })).not.toHaveProperty('identity');
    expect(rule({ forMs: 3_600_000 })).toMatchObject({ duration: { kind: 'until', until: 3_601_000 } });
    expect(rule({ session: true })).toMatchObject({ duration: { kind: 'always' }, session: true });
  });

  it('an unverified program gets no code-identity rule; a flow without a token no process rule', () => {
    expect(rule({}, { ...subject, identity: undefined })).toMatch(/not verified/);
    expect(rule({ remember: 'process' }, { ...subject, token: undefined })).toMatch(/no process token/);
  });
});
