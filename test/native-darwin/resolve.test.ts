// The macOS attribution logic, run on Linux against a recording fake of the raw bindings.
// What the fake cannot prove — that the real frameworks behave as modelled — is left to
// real.test.ts, which only runs on a Mac.
import { afterEach, describe, expect, it } from 'vitest';
import type { AttributionBackend } from '../../src/attribution/types.js';
import { kSecCSCheckAllArchitectures, kSecCSSigningInformation } from '../../src/native/darwin/bindings.js';
import { createDarwinBackend } from '../../src/native/darwin/backend.js';
import { readTypeIds, withScope } from '../../src/native/darwin/cf.js';
import { copyGuest, createSignerRequirements, readSigningDetails } from '../../src/native/darwin/resolve.js';
import { CURL, DEV_ID_APP, FakeDarwin, tokenOf, type FakeCall, type FakeProcess } from './fake-darwin.js';

const backends: AttributionBackend[] = [];
function setup(processes: FakeProcess[]): { fake: FakeDarwin; backend: AttributionBackend } {
  const fake = new FakeDarwin(processes);
  const backend = createDarwinBackend(fake);
  backends.push(backend);
  return { fake, backend };
}

/** Every object the lookup created or copied is gone; only the three long-lived class requirements
 *  remain until the backend closes, and then nothing does. */
function expectNoLeaks(fake: FakeDarwin, backend: AttributionBackend): void {
  expect(fake.errors).toEqual([]);
  expect(fake.live().every((o) => o === 'requirement:class requirement')).toBe(true);
  expect(fake.livePorts()).toEqual([]);
  backend.close?.();
  expect(fake.live()).toEqual([]);
  expect(fake.errors).toEqual([]);
}

afterEach(() => {
  for (const b of backends.splice(0)) b.close?.();
});

function withFail(p: FakeProcess, fail: FakeProcess['fail']): FakeProcess {
  return { ...p, fail };
}

describe('secure route', () => {
  it('identifies an Apple platform binary by its designated requirement', async () => {
    const { fake, backend } = setup([CURL]);
    const [a] = await backend.resolve([tokenOf(CURL)]);
    expect(a).toEqual({
      trust: 'secure',
      pid: 4242,
      uid: 501,
      name: 'curl',
      path: '/usr/bin/curl',
      identity: 'identifier "com.apple.curl" and anchor apple',
      signer: { kind: 'apple', label: 'Apple (com.apple.curl)' },
    });
    expect(fake.count('proc_pidpath')).toBe(0);
    expectNoLeaks(fake, backend);
  });

  it('builds the guest attributes as {kSecGuestAttributeAudit: CFData of the exact 32 token bytes}', async () => {
    const { fake, backend } = setup([CURL]);
    const token = tokenOf(CURL);
    await backend.resolve([token]);
    expect(fake.guestRequests).toHaveLength(1);
    const request = fake.guestRequests[0]!;
    expect(request.keys).toEqual([fake.symbols.kSecGuestAttributeAudit]);
    expect(request.valueKinds).toEqual(['data']);
    expect(Buffer.from(request.tokenBytes!).equals(Buffer.from(token))).toBe(true);
    // The dictionary must retain what it holds, or the data could be freed under it.
    expect(request.keyCallBacks).toBe(fake.symbols.kCFTypeDictionaryKeyCallBacks);
    expect(request.valueCallBacks).toBe(fake.symbols.kCFTypeDictionaryValueCallBacks);
    expectNoLeaks(fake, backend);
  });

  it('follows the chain guest → static code → signing info → validity → DR text, in that order', async () => {
    const { fake, backend } = setup([CURL]);
    await backend.resolve([tokenOf(CURL)]);
    const chain: FakeCall[] = [
      'SecCodeCopyGuestWithAttributes', 'SecCodeCopyStaticCode', 'SecCodeCopySigningInformation', 'SecCodeCheckValidity',
      'SecStaticCodeCheckValidity', 'SecCodeCopyDesignatedRequirement', 'SecRequirementCopyString',
    ];
    const seen = fake.callNames().filter((n) => chain.includes(n));
    const firsts = chain.map((n) => seen.indexOf(n));
    expect(firsts.every((i) => i >= 0)).toBe(true);
    expect([...firsts].sort((x, y) => x - y)).toEqual(firsts);
    // The path comes from the signing information, which is read once.
    expect(fake.count('SecCodeCopySigningInformation')).toBe(1);
    expect(fake.count('SecCodeCopyPath')).toBe(0);
  });

  it('reports a bundled app\'s executable, not its bundle directory: the same path the PID route reports', async () => {
    const { fake, backend } = setup([DEV_ID_APP]);
    const [secure] = await backend.resolve([tokenOf(DEV_ID_APP)]);
    expect(secure).toMatchObject({ trust: 'secure', path: '/Applications/Example.app/Contents/MacOS/Example' });
    // Without a bundle name in Info.plist the name is the executable's, never "Example.app".
    const unnamed: FakeProcess = { ...DEV_ID_APP, pid: 701, signing: { ...DEV_ID_APP.signing!, bundleName: undefined } };
    const refused = withFail({ ...DEV_ID_APP, pid: 702 }, { SecCodeCopyGuestWithAttributes: 100001 });
    fake.spawn(unnamed);
    fake.spawn(refused);
    const [named, byPid] = await backend.resolve([tokenOf(unnamed), tokenOf(refused)]);
    expect(named).toMatchObject({ trust: 'secure', name: 'Example', path: DEV_ID_APP.path });
    expect(byPid).toMatchObject({ trust: 'insecure', name: 'Example', path: DEV_ID_APP.path });
    expectNoLeaks(fake, backend);
  });

  it('falls back to SecCodeCopyPath only when the signing information has no main executable', async () => {
    const p = withFail({ ...DEV_ID_APP }, { SecCodeCopySigningInformation: -67048 });
    const { fake, backend } = setup([p]);
    const [a] = await backend.resolve([tokenOf(p)]);
    // SecCodeCopyPath names the bundle directory; that is all there is to show then.
    expect(a).toMatchObject({ trust: 'secure', path: '/Applications/Example.app', name: 'Example.app' });
    expect(fake.count('SecCodeCopyPath')).toBe(1);
    expectNoLeaks(fake, backend);
  });

  it('validates the file for every architecture (CVE-2018-10470) and asks for signing information', async () => {
    const { fake, backend } = setup([CURL]);
    await backend.resolve([tokenOf(CURL)]);
    expect(fake.staticValidityFlags).toHaveLength(1);
    expect(fake.staticValidityFlags[0]! & kSecCSCheckAllArchitectures).toBe(kSecCSCheckAllArchitectures);
    expect(fake.signingInfoFlags).toEqual([kSecCSSigningInformation]);
  });

  it('names a Developer ID app by its leaf certificate and team, and its bundle name', async () => {
    const { fake, backend } = setup([DEV_ID_APP]);
    const [a] = await backend.resolve([tokenOf(DEV_ID_APP)]);
    expect(a).toMatchObject({
      trust: 'secure',
      name: 'Example',
      path: DEV_ID_APP.path,
      identity: DEV_ID_APP.signing!.designated,
      signer: { kind: 'developer-id', label: 'Developer ID Application: Example Corp (EXAMPLE123)', teamId: 'EXAMPLE123' },
    });
    expect(fake.count('SecCertificateCopyCommonName')).toBe(3);
    expectNoLeaks(fake, backend);
  });

  it('sorts App Store, ad hoc, unsigned and unrecognised signers into their classes', async () => {
    const base = DEV_ID_APP.signing!;
    const appStore: FakeProcess = { ...DEV_ID_APP, pid: 801, signing: { ...base, classes: ['app-store'], certificates: ['Apple Mac OS Application Signing'] } };
    const adHoc: FakeProcess = {
      ...DEV_ID_APP, pid: 802, path: '/Users/me/bin/tool',
      signing: { ...base, teamId: undefined, classes: [], flags: 0x2, certificates: [], designated: 'cdhash H"0102030405"', bundleName: undefined },
    };
    const unsigned: FakeProcess = { pid: 803, pidversion: 1, path: '/tmp/a.out' };
    const other: FakeProcess = { ...DEV_ID_APP, pid: 804, signing: { ...base, teamId: undefined, classes: [], certificates: ['My Own CA Leaf'] } };
    const { fake, backend } = setup([appStore, adHoc, unsigned, other]);
    const results = await backend.resolve([appStore, adHoc, unsigned, other].map(tokenOf));
    expect(results.map((r) => r.signer?.kind)).toEqual(['app-store', 'ad-hoc', 'unsigned', 'unknown']);
    expect(results.map((r) => r.trust)).toEqual(['secure', 'secure', 'secure', 'secure']);
    expect(results[0]!.signer).toEqual({ kind: 'app-store', label: 'App Store (EXAMPLE123)', teamId: 'EXAMPLE123' });
    expect(results[1]!.identity).toBe('cdhash H"0102030405"');
    // Unsigned code has no identity a rule could match: it can only be blocked as "unsigned".
    expect(results[2]).toEqual({ trust: 'secure', pid: 803, uid: 501, name: 'a.out', path: '/tmp/a.out', signer: { kind: 'unsigned', label: 'unsigned' } });
    expect(results[3]!.signer!.label).toContain('My Own CA Leaf');
    expectNoLeaks(fake, backend);
  });
});

describe('signing information', () => {
  it('decodes identifier, team, cdhash, flags, certificate common names and the bundle name', () => {
    const fake = new FakeDarwin([DEV_ID_APP]);
    const requirements = createSignerRequirements(fake);
    const ctx = { b: fake, ids: readTypeIds(fake), requirements };
    const details = withScope(fake, (scope) => {
      const { code } = copyGuest(fake, scope, tokenOf(DEV_ID_APP));
      const out: [bigint | null] = [null];
      expect(fake.SecCodeCopyStaticCode(code!, 0, out)).toBe(0);
      return readSigningDetails(ctx, scope, scope.take(out)!);
    });
    expect(details).toEqual({
      identifier: 'com.example.app',
      teamId: 'EXAMPLE123',
      cdhash: '0102030405',
      flags: 0x10000,
      certificates: ['Developer ID Application: Example Corp (EXAMPLE123)', 'Developer ID Certification Authority', 'Apple Root CA'],
      bundleName: 'Example',
      mainExecutable: '/Applications/Example.app/Contents/MacOS/Example',
    });
    requirements.release();
    expect(fake.live()).toEqual([]);
    expect(fake.errors).toEqual([]);
  });
});

describe('error codes of SecCodeCopyGuestWithAttributes', () => {
  it('100001 (EPERM): falls back to the PID route and says so in words', async () => {
    const daemon: FakeProcess = withFail({ pid: 312, pidversion: 5, euid: 0, path: '/usr/libexec/trustd', signing: CURL.signing }, { SecCodeCopyGuestWithAttributes: 100001 });
    const { fake, backend } = setup([daemon]);
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a).toMatchObject({ trust: 'insecure', pid: 312, uid: 0, name: 'trustd', path: '/usr/libexec/trustd' });
    expect(a!.identity).toBeUndefined();
    expect(a!.reason).toMatchObject({ call: 'SecCodeCopyGuestWithAttributes', errno: 'EPERM', code: 100001 });
    expect(a!.reason!.message).toMatch(/refused/);
    expect(a!.reason!.message).toMatch(/PID/);
    expectNoLeaks(fake, backend);
  });

  it('100003 (ESRCH): the process is gone, and the PID is not even looked at', async () => {
    const { fake, backend } = setup([]);
    const [a] = await backend.resolve([tokenOf({ pid: 999, pidversion: 1 })]);
    expect(a).toMatchObject({ trust: 'gone', pid: 999, reason: { call: 'SecCodeCopyGuestWithAttributes', errno: 'ESRCH', code: 100003 } });
    expect(a!.path).toBeUndefined();
    expect(fake.count('proc_pidpath')).toBe(0);
    expectNoLeaks(fake, backend);
  });

  it('errSecCSNoSuchCode: no guest has this token any more, so the process is gone, as from any later call', async () => {
    const p = withFail({ ...CURL }, { SecCodeCopyGuestWithAttributes: -67065 });
    const { fake, backend } = setup([p]);
    const [a] = await backend.resolve([tokenOf(p)]);
    expect(a).toMatchObject({ trust: 'gone', pid: 4242, reason: { call: 'SecCodeCopyGuestWithAttributes', code: -67065 } });
    expect(a!.path).toBeUndefined();
    expect(fake.count('proc_pidpath')).toBe(0);

    const later = withFail({ ...CURL, pid: 4243 }, { SecCodeCopyStaticCode: -67065 });
    fake.spawn(later);
    const [b] = await backend.resolve([tokenOf(later)]);
    expect(b).toMatchObject({ trust: 'gone', reason: { call: 'SecCodeCopyStaticCode', code: -67065 } });
    expect(fake.count('proc_pidpath')).toBe(0);
    expectNoLeaks(fake, backend);
  });

  it('any other failure: PID route, with the OSStatus in the reason', async () => {
    const p = withFail({ ...CURL }, { SecCodeCopyGuestWithAttributes: -67048 });
    const { fake, backend } = setup([p]);
    const [a] = await backend.resolve([tokenOf(p)]);
    expect(a).toMatchObject({ trust: 'insecure', path: '/usr/bin/curl', reason: { call: 'SecCodeCopyGuestWithAttributes', code: -67048 } });
    expect(a!.reason!.message).toContain('-67048');
    expectNoLeaks(fake, backend);
  });

  it('0: the secure route, and no PID lookup at all', async () => {
    const { fake, backend } = setup([CURL]);
    const [a] = await backend.resolve([tokenOf(CURL)]);
    expect(a!.trust).toBe('secure');
    expect(fake.callNames()).not.toContain('proc_pidpath');
    expect(fake.callNames()).not.toContain('task_name_for_pid');
  });
});

describe('every failure path releases what it took', () => {
  const failures: Array<[FakeCall, number, string]> = [
    ['SecCodeCopyStaticCode', -67048, 'insecure'],
    ['SecCodeCopyStaticCode', 100003, 'gone'],
    ['SecCodeCheckValidity', -67061, 'secure'],
    ['SecCodeCheckValidity', 100003, 'gone'],
    ['SecStaticCodeCheckValidity', -67034, 'secure'],
    ['SecCodeCopySigningInformation', -67048, 'secure'],
    ['SecCodeCopyDesignatedRequirement', -67048, 'secure'],
    ['SecRequirementCopyString', -67048, 'secure'],
  ];
  for (const [call, status, trust] of failures) {
    it(`${call} → ${status} gives ${trust} with no leak and no double release`, async () => {
      const p = withFail({ ...DEV_ID_APP }, { [call]: status });
      const { fake, backend } = setup([p]);
      const [a] = await backend.resolve([tokenOf(p)]);
      expect(a!.trust).toBe(trust);
      // Without signing information the path is SecCodeCopyPath's: the bundle directory.
      if (trust !== 'gone') expect(a!.path).toBe(call === 'SecCodeCopySigningInformation' ? DEV_ID_APP.bundle : DEV_ID_APP.path);
      if (trust === 'secure' && call !== 'SecCodeCopySigningInformation') {
        // No identity from a failed or unreadable signature; the reason names the call.
        expect(a!.identity).toBeUndefined();
        expect(a!.reason!.call).toBe(call);
      }
      expectNoLeaks(fake, backend);
    });
  }

  it('no signing information and no path either: the PID route, with no leak', async () => {
    const p = withFail({ ...DEV_ID_APP }, { SecCodeCopySigningInformation: -67048, SecCodeCopyPath: -67068 });
    const { fake, backend } = setup([p]);
    const [a] = await backend.resolve([tokenOf(p)]);
    expect(a).toMatchObject({ trust: 'insecure', path: DEV_ID_APP.path, reason: { call: 'SecCodeCopyPath', code: -67068 } });
    expectNoLeaks(fake, backend);
  });

  it('a replaced executable is reported as such', async () => {
    const p = withFail({ ...DEV_ID_APP }, { SecStaticCodeCheckValidity: -67034 });
    const { backend } = setup([p]);
    const [a] = await backend.resolve([tokenOf(p)]);
    expect(a).toMatchObject({ trust: 'secure', exeChanged: 'replaced', signer: { kind: 'unknown' } });
  });

  it('releases everything after a mixed batch of many lookups', async () => {
    const daemon = withFail({ pid: 312, pidversion: 5, path: '/usr/libexec/trustd' }, { SecCodeCopyGuestWithAttributes: 100001 });
    const { fake, backend } = setup([CURL, DEV_ID_APP, daemon]);
    const tokens = Array.from({ length: 50 }, (_, i) => [tokenOf(CURL), tokenOf(DEV_ID_APP), tokenOf(daemon), tokenOf({ pid: 5000 + i, pidversion: 1 })][i % 4]!);
    const results = await backend.resolve(tokens);
    expect(results).toHaveLength(50);
    expect(fake.count('CFRelease')).toBeGreaterThan(100);
    expectNoLeaks(fake, backend);
  });
});

describe('PID route', () => {
  const daemon: FakeProcess = withFail({ pid: 500, pidversion: 7, euid: 0, path: '/usr/libexec/rapportd' }, { SecCodeCopyGuestWithAttributes: 100001 });

  it('reads the path by PID, then re-reads the PID\'s audit token to confirm the instance', async () => {
    const { fake, backend } = setup([daemon]);
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a!.trust).toBe('insecure');
    const names = fake.callNames();
    const order = ['SecCodeCopyGuestWithAttributes', 'proc_pidpath', 'task_name_for_pid', 'task_info', 'mach_port_deallocate'].map((n) => names.indexOf(n as FakeCall));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect(names).not.toContain('SecCodeCopyStaticCode');
    expectNoLeaks(fake, backend);
  });

  it('a PID reused before proc_pidpath → gone, never the new process\'s path', async () => {
    const { fake, backend } = setup([daemon]);
    fake.before('proc_pidpath', () => fake.spawn({ pid: 500, pidversion: 8, path: '/tmp/evil' }));
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a!.trust).toBe('gone');
    expect(a!.reason!.message).toMatch(/reused/);
    expect(JSON.stringify(a)).not.toContain('/tmp/evil');
    expectNoLeaks(fake, backend);
  });

  it('a PID reused between proc_pidpath and the re-check → gone as well', async () => {
    const { fake, backend } = setup([daemon]);
    fake.before('task_name_for_pid', () => fake.spawn({ pid: 500, pidversion: 9, path: '/tmp/evil' }));
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a!.trust).toBe('gone');
    expect(JSON.stringify(a)).not.toContain('/tmp/evil');
    expect(JSON.stringify(a)).not.toContain('rapportd');
    expectNoLeaks(fake, backend);
  });

  it('the process exits before proc_pidpath → gone', async () => {
    const { fake, backend } = setup([daemon]);
    fake.before('proc_pidpath', () => fake.exit(500));
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a).toMatchObject({ trust: 'gone', pid: 500, reason: { call: 'proc_pidpath', errno: 'ESRCH' } });
    expectNoLeaks(fake, backend);
  });

  it('when the instance cannot be re-checked, the answer stays insecure and says so', async () => {
    const { fake, backend } = setup([daemon]);
    fake.taskNameDenied = true;
    const [a] = await backend.resolve([tokenOf(daemon)]);
    expect(a).toMatchObject({ trust: 'insecure', path: '/usr/libexec/rapportd' });
    expect(a!.reason!.message).toMatch(/could not be re-checked/);
    expectNoLeaks(fake, backend);
  });
});

describe('batches', () => {
  it('answers in input order, including malformed tokens, and keeps going after a throw', async () => {
    const { fake, backend } = setup([CURL, DEV_ID_APP]);
    fake.before('SecCodeCopySigningInformation', () => {
      throw new Error('simulated crash in a binding');
    });
    const results = await backend.resolve([tokenOf(CURL), new Uint8Array(31), tokenOf(DEV_ID_APP), tokenOf({ pid: 1, pidversion: 1 })]);
    expect(results.map((r) => r.trust)).toEqual(['insecure', 'insecure', 'secure', 'gone']);
    expect(results[0]!.reason!.message).toContain('simulated crash');
    expect(results[1]!.reason!.message).toContain('not a macOS audit token (31 bytes');
    expect(results[2]!.path).toBe(DEV_ID_APP.path);
    // Even the throw in the middle of the secure route released what it had taken.
    expectNoLeaks(fake, backend);
  });

  it('closing in the middle of a batch answers the rest without using released objects', async () => {
    const { fake, backend } = setup([CURL, DEV_ID_APP]);
    const batch = backend.resolve([tokenOf(CURL), tokenOf(DEV_ID_APP), tokenOf(CURL)]);
    backend.close?.();
    const results = await batch;
    expect(results.map((r) => r.trust)).toEqual(['secure', 'insecure', 'insecure']);
    expect(results[1]!.reason!.message).toMatch(/closed/);
    expect(fake.errors).toEqual([]);
    expect(fake.live()).toEqual([]);
  });

  it('after close, answers without touching the bindings', async () => {
    const { fake, backend } = setup([CURL]);
    backend.close?.();
    const before = fake.calls.length;
    const [a] = await backend.resolve([tokenOf(CURL)]);
    expect(a!.trust).toBe('insecure');
    expect(fake.calls.length).toBe(before);
  });
});
