// Every koffi declaration in src/native/darwin/bindings.ts, called for real against C compiled from
// fixtures/darwin-abi-stand-in.c: functions with exactly the signatures of Apple's headers, which
// record what they receive. This runs on Linux (gcc + koffi), so a declaration that would pass a
// struct's words out of order, truncate a 64-bit CFIndex, turn a negative OSStatus positive, fill an
// output the C side left alone, or read a constant's address instead of its value fails here, before
// a Mac ever loads the frameworks (which has NOT YET BEEN DONE: real.test.ts is that check).
//
// It does not prove Apple's frameworks have these signatures (that is the headers' word, cited in
// bindings.ts), nor the arm64 macOS calling convention, which koffi implements separately.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DECLARATIONS,
  bindDarwinLibraries,
  kCFNumberSInt64Type,
  kCFStringEncodingUTF8,
  type CFOut,
  type DarwinBindings,
  type DeclarationName,
} from '../../src/native/darwin/bindings.js';

const source = new URL('./fixtures/darwin-abi-stand-in.c', import.meta.url).pathname;

function findCompiler(): string | undefined {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return 'gcc';
  } catch {
    return undefined;
  }
}

const compiler = findCompiler();
// CI installs gcc (.ci/run); there a missing compiler is a failure, not a reason to skip.
if (!compiler && process.env.CI === 'true') {
  throw new Error('gcc is missing: the koffi declarations cannot be checked against C (.ci/run should install gcc and libc6-dev)');
}
if (!compiler) console.warn('marshalling-against-c: SKIPPED, gcc is not installed');

interface Probes {
  wasCalled(name: string): number;
  setStatus(status: number): void;
  object(i: number): bigint;
  constantStorage(i: number): bigint;
  keyCallbacks(): bigint;
  valueCallbacks(): bigint;
  ptr(i: number): bigint | null;
  long(i: number): number;
  u32(i: number): number;
  tokenWord(i: number): number;
  bytes(out: Buffer, size: number): number;
  text(): string;
}

describe.skipIf(!compiler)('the darwin declarations against C with the same signatures', () => {
  let dir: string;
  let b: DarwinBindings;
  let probe: Probes;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowtop-darwin-abi-'));
    const library = join(dir, 'libdarwin-stand-in.so');
    execFileSync(compiler!, ['-Wall', '-Werror', '-shared', '-fPIC', '-o', library, source], { stdio: 'pipe' });
    // One library stands in for all four: each symbol is looked up in the library its declaration names.
    b = bindDarwinLibraries(koffi, { security: library, coreFoundation: library, bsm: library, system: library });
    const lib = koffi.load(library);
    probe = {
      wasCalled: lib.func('int probe_was_called(const char *name)'),
      setStatus: lib.func('void probe_set_status(int32_t status)'),
      object: lib.func('void *probe_object(int i)'),
      constantStorage: lib.func('void *probe_constant_storage(int i)'),
      keyCallbacks: lib.func('void *probe_key_callbacks()'),
      valueCallbacks: lib.func('void *probe_value_callbacks()'),
      ptr: lib.func('void *probe_ptr(int i)'),
      long: lib.func('long probe_long(int i)'),
      u32: lib.func('uint32_t probe_u32(int i)'),
      tokenWord: lib.func('uint32_t probe_token_word(int i)'),
      bytes: lib.func('long probe_bytes(_Out_ uint8_t *out, long size)'),
      text: lib.func('const char *probe_text()'),
    } as Probes;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads each exported CFString constant as the pointer it holds, and the callback structs by address', () => {
    const s = b.symbols;
    const expected: Array<[bigint, number]> = [
      [s.kSecGuestAttributeAudit, 0],
      [s.kSecCodeInfoIdentifier, 1],
      [s.kSecCodeInfoTeamIdentifier, 2],
      [s.kSecCodeInfoUnique, 3],
      [s.kSecCodeInfoFlags, 4],
      [s.kSecCodeInfoCertificates, 5],
      [s.kSecCodeInfoPList, 6],
      [s.kSecCodeInfoMainExecutable, 7],
      [s.kCFBundleNameKey, 8],
    ];
    for (const [value, slot] of expected) expect(value).toBe(probe.constantStorage(slot));
    expect(s.kCFTypeDictionaryKeyCallBacks).toBe(probe.keyCallbacks());
    expect(s.kCFTypeDictionaryValueCallBacks).toBe(probe.valueCallbacks());
  });

  it('passes audit_token_t by value with its eight words in order, and each accessor reads its own word', () => {
    const token = { val: [501, 502, 20, 503, 21, 4242, 100001, 0xfffffff7] };
    expect(b.audit_token_to_pid(token)).toBe(4242);
    for (let i = 0; i < 8; i++) expect(probe.tokenWord(i)).toBe(token.val[i]);
    expect(b.audit_token_to_euid(token)).toBe(502);
    // pidversion is an int in libbsm: a word with the top bit set comes back negative, not truncated.
    expect(b.audit_token_to_pidversion(token)).toBe(0xfffffff7 | 0);
  });

  it('returns a negative OSStatus as negative and leaves a failed call\'s output null', () => {
    const object = probe.object(0);
    for (const status of [-67062, -67065, 100001]) {
      probe.setStatus(status);
      const calls: Array<[string, (out: CFOut) => number]> = [
        ['SecCodeCopyGuestWithAttributes', (out) => b.SecCodeCopyGuestWithAttributes(null, object, 0, out)],
        ['SecCodeCopyStaticCode', (out) => b.SecCodeCopyStaticCode(object, 0, out)],
        ['SecCodeCopyPath', (out) => b.SecCodeCopyPath(object, 0, out)],
        ['SecCodeCopySigningInformation', (out) => b.SecCodeCopySigningInformation(object, 2, out)],
        ['SecCodeCopyDesignatedRequirement', (out) => b.SecCodeCopyDesignatedRequirement(object, 0, out)],
        ['SecRequirementCopyString', (out) => b.SecRequirementCopyString(object, 0, out)],
        ['SecRequirementCreateWithString', (out) => b.SecRequirementCreateWithString(object, 0, out)],
        ['SecCertificateCopyCommonName', (out) => b.SecCertificateCopyCommonName(object, out)],
      ];
      for (const [name, call] of calls) {
        const out: CFOut = [null];
        expect(call(out), name).toBe(status);
        expect(out[0], name).toBeNull();
      }
      expect(b.SecCodeCheckValidity(object, 0, null)).toBe(status);
      expect(b.SecStaticCodeCheckValidity(object, 0, null)).toBe(status);
    }
  });

  it('fills each Security output with the object the C side returned, after passing inputs and flags through', () => {
    probe.setStatus(0);
    const host = probe.object(6);
    const attributes = probe.object(5);
    const out: CFOut = [null];
    expect(b.SecCodeCopyGuestWithAttributes(host, attributes, 0x10, out)).toBe(0);
    expect(out[0]).toBe(probe.object(0));
    expect(probe.ptr(0)).toBe(host);
    expect(probe.ptr(1)).toBe(attributes);
    expect(probe.u32(0)).toBe(0x10);

    const guest = out[0]!;
    const results: Array<[(o: CFOut) => number, number]> = [
      [(o) => b.SecCodeCopyStaticCode(guest, 0, o), 1],
      [(o) => b.SecCodeCopyPath(guest, 0, o), 2],
      [(o) => b.SecCodeCopySigningInformation(guest, 2, o), 3],
      [(o) => b.SecCodeCopyDesignatedRequirement(guest, 0, o), 4],
      [(o) => b.SecRequirementCopyString(guest, 0, o), 5],
      [(o) => b.SecRequirementCreateWithString(guest, 0, o), 6],
      [(o) => b.SecCertificateCopyCommonName(guest, o), 7],
    ];
    for (const [call, slot] of results) {
      const o: CFOut = [null];
      expect(call(o)).toBe(0);
      expect(o[0]).toBe(probe.object(slot));
      expect(probe.ptr(0)).toBe(guest);
    }
    // A requirement is passed through; null stays NULL.
    const requirement = probe.object(4);
    expect(b.SecCodeCheckValidity(guest, 0, requirement)).toBe(0);
    expect(probe.ptr(1)).toBe(requirement);
    expect(b.SecStaticCodeCheckValidity(guest, 0x5, null)).toBe(0);
    expect(probe.ptr(1)).toBeNull();
    expect(probe.u32(0)).toBe(0x5);
  });

  it('creates CFData from the given bytes and copies a CFRange out with location before length', () => {
    const bytes = Uint8Array.from([0, 1, 0xfe, 0xff, 0x80]);
    expect(b.CFDataCreate(bytes, bytes.length)).toBe(probe.object(0));
    expect(probe.ptr(0)).toBeNull(); // the default allocator
    const seen = Buffer.alloc(64);
    expect(probe.bytes(seen, 64)).toBe(5);
    expect([...seen.subarray(0, 5)]).toEqual([...bytes]);

    const data = probe.object(0);
    expect(b.CFDataGetLength(data)).toBe(5);
    const out = Buffer.alloc(8);
    b.CFDataGetBytes(data, { location: 3, length: 5 }, out);
    expect([probe.long(0), probe.long(1)]).toEqual([3, 5]);
    expect([...out.subarray(0, 5)]).toEqual([3, 4, 5, 6, 7]);
  });

  it('hands CFDictionaryCreate arrays of pointers, the count and both callback addresses', () => {
    const key = b.symbols.kSecGuestAttributeAudit;
    const value = probe.object(0);
    const dict = b.CFDictionaryCreate([key], [value], 1, b.symbols.kCFTypeDictionaryKeyCallBacks, b.symbols.kCFTypeDictionaryValueCallBacks);
    expect(dict).toBe(probe.object(1));
    expect(probe.ptr(0)).toBeNull();
    expect(probe.ptr(1)).toBe(key);
    expect(probe.ptr(2)).toBe(value);
    expect(probe.ptr(3)).toBe(probe.keyCallbacks());
    expect(probe.ptr(4)).toBe(probe.valueCallbacks());
    expect(probe.long(0)).toBe(1);

    expect(b.CFDictionaryGetValue(dict!, b.symbols.kSecCodeInfoIdentifier)).toBe(probe.object(2));
    expect(b.CFDictionaryGetValue(dict!, b.symbols.kSecCodeInfoTeamIdentifier)).toBeNull();
    expect(probe.ptr(1)).toBe(b.symbols.kSecCodeInfoTeamIdentifier);
  });

  it('passes strings as NUL-terminated UTF-8 and reads them back through the caller\'s buffer', () => {
    expect(b.CFStringCreateWithCString('anchor apple generic and identifier "é"', kCFStringEncodingUTF8)).toBe(probe.object(3));
    expect(probe.text()).toBe('anchor apple generic and identifier "é"');
    expect(probe.u32(0)).toBe(kCFStringEncodingUTF8);

    const str = probe.object(3);
    expect(b.CFStringGetLength(str)).toBe(6);
    expect(b.CFStringGetMaximumSizeForEncoding(6, kCFStringEncodingUTF8)).toBe(24);
    expect(probe.u32(0)).toBe(kCFStringEncodingUTF8);
    const buffer = Buffer.alloc(25);
    expect(b.CFStringGetCString(str, buffer, 25, kCFStringEncodingUTF8)).toBe(true);
    expect(buffer.toString('utf8', 0, buffer.indexOf(0))).toBe('Zoë/日本');
    expect(b.CFStringGetCString(str, Buffer.alloc(4), 4, kCFStringEncodingUTF8)).toBe(false);
    expect(probe.long(0)).toBe(4);
  });

  it('reads a 64-bit CFNumber, CFTypeIDs above 32 bits, arrays with a NULL element and a path string', () => {
    const out = Buffer.alloc(8);
    expect(b.CFNumberGetValue(probe.object(0), kCFNumberSInt64Type, out)).toBe(true);
    expect(out.readBigInt64LE(0)).toBe(-5000000000n);
    expect(b.CFNumberGetValue(probe.object(0), 9, out)).toBe(false);
    expect(probe.long(0)).toBe(9);

    expect(b.CFGetTypeID(probe.object(0))).toBe(0x100000007);
    expect(b.CFStringGetTypeID()).toBe(0x100000007);
    expect(b.CFNumberGetTypeID()).toBe(0x100000016);
    expect(b.CFDataGetTypeID()).toBe(0x100000014);
    expect(b.CFArrayGetTypeID()).toBe(0x100000013);
    expect(b.CFDictionaryGetTypeID()).toBe(0x100000012);

    const array = probe.object(1);
    expect(b.CFArrayGetCount(array)).toBe(3);
    expect(b.CFArrayGetValueAtIndex(array, 0)).toBe(probe.object(4));
    expect(b.CFArrayGetValueAtIndex(array, 1)).toBeNull();
    expect(b.CFArrayGetValueAtIndex(array, 2)).toBe(probe.object(6));
    expect(probe.long(0)).toBe(2);

    expect(b.CFURLCopyFileSystemPath(probe.object(2), 0)).toBe(probe.object(7));
    expect(probe.ptr(0)).toBe(probe.object(2));
    b.CFRelease(probe.object(5));
    expect(probe.ptr(0)).toBe(probe.object(5));
  });

  it('reads proc_pidpath into the buffer, and errno after a failure', () => {
    const buffer = Buffer.alloc(4096);
    expect(b.proc_pidpath(4242, buffer, 4096)).toBe('/usr/bin/stand-in'.length);
    expect([probe.long(0), probe.u32(0)]).toEqual([4242, 4096]);
    expect(buffer.toString('utf8', 0, buffer.indexOf(0))).toBe('/usr/bin/stand-in');
    expect(b.proc_pidpath(999, buffer, 4096)).toBe(0);
    expect(b.errno()).toBe(3); // ESRCH
  });

  it('passes mach_task_self_ as the task, writes the port out and updates task_info\'s count in place', () => {
    const port: [number] = [0];
    expect(b.task_name_for_pid(4242, port)).toBe(0);
    expect(probe.u32(0)).toBe(0x503);
    expect(port[0]).toBe(4242 + 0x1000);
    // An _Out_ parameter is not passed in: koffi hands C a zeroed slot and copies it back even when
    // the call fails, so a caller must look at kern_return_t first (resolve.ts does).
    const refused: [number] = [77];
    expect(b.task_name_for_pid(-1, refused)).toBe(5);
    expect(refused[0]).toBe(0);

    const info = Buffer.alloc(32);
    const count: [number] = [8];
    expect(b.task_info(port[0], 15, info, count)).toBe(0);
    expect([probe.u32(0), probe.u32(1), probe.u32(2)]).toEqual([port[0], 15, 8]);
    expect(count[0]).toBe(8);
    expect([...new Uint32Array(info.buffer, info.byteOffset, 8)]).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
    const small: [number] = [3];
    expect(b.task_info(port[0], 15, info, small)).toBe(4);
    expect(probe.u32(2)).toBe(3);

    expect(b.mach_port_deallocate(port[0])).toBe(0);
    expect([probe.u32(0), probe.u32(1)]).toEqual([0x503, port[0]]);
  });

  it('would catch a wrong declaration: a CFRange of two 32-bit ints does not arrive as location and length', () => {
    // The same call as above, declared wrongly on purpose, shows these checks can fail.
    const lib = koffi.load(join(dir, 'libdarwin-stand-in.so'));
    const narrow = koffi.struct('flowtop_test_narrow_CFRange', { location: 'int', length: 'int' });
    const wrong = lib.func('CFDataGetBytes', 'void', ['void *', narrow, 'void *']);
    wrong(probe.object(0), { location: 3, length: 5 }, Buffer.alloc(64));
    expect([probe.long(0), probe.long(1)]).not.toEqual([3, 5]);
  });

  it('reached every declared C function (a declaration no test calls is a declaration nobody checked)', () => {
    const missed = (Object.keys(DECLARATIONS) as DeclarationName[]).filter((name) => !probe.wasCalled(name));
    expect(missed).toEqual([]);
  });
});
