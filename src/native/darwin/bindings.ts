// The raw macOS calls flowtop makes, bound once through koffi: Security.framework, CoreFoundation,
// libbsm, libproc and two Mach calls. Everything above this file talks to the `DarwinBindings`
// interface, so the logic runs on Linux against a recorded fake (test/native-darwin/).
//
// NOT YET RUN ON A MAC: this file has been type-checked and its import has been tested on Linux
// only. The koffi declarations follow Apple's headers (CSCommon.h, SecCode.h, SecStaticCode.h,
// SecRequirement.h, CFDictionary.h, bsm/libbsm.h, libproc.h, mach/task_info.h); the darwin-only
// test in test/native-darwin/real.test.ts is the first thing to run on a Mac.
//
// Importing this module loads nothing: koffi and the frameworks are loaded by loadDarwinBindings(),
// which refuses to run anywhere but macOS.
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

/** A CoreFoundation object reference (koffi 3 represents pointers as BigInt). Never 0n. */
export type CFRef = bigint;
/** A single-slot array that a Copy/Create call fills with its result, koffi's out-parameter shape. */
export type CFOut = [CFRef | null];
/** audit_token_t passed by value: a 32-byte struct of eight uint32 (libbsm takes it by value). */
export interface AuditTokenValue {
  val: number[];
}

/** Exported constant symbols, read once at load time. */
export interface DarwinSymbols {
  kSecGuestAttributeAudit: CFRef;
  kSecCodeInfoIdentifier: CFRef;
  kSecCodeInfoTeamIdentifier: CFRef;
  kSecCodeInfoUnique: CFRef;
  kSecCodeInfoFlags: CFRef;
  kSecCodeInfoCertificates: CFRef;
  kSecCodeInfoPList: CFRef;
  /** A CFURL of the main executable (for a bundle, the file inside Contents/MacOS). */
  kSecCodeInfoMainExecutable: CFRef;
  kCFBundleNameKey: CFRef;
  /** Addresses of the callback structs (passed by pointer to CFDictionaryCreate), not CF objects. */
  kCFTypeDictionaryKeyCallBacks: bigint;
  kCFTypeDictionaryValueCallBacks: bigint;
}

/** Exactly the raw calls the darwin layer uses. Ownership follows CoreFoundation's rules: a result
 *  of a *Create* or *Copy* call is owned and must be CFRelease'd once; a *Get* result is borrowed. */
export interface DarwinBindings {
  readonly symbols: DarwinSymbols;

  // CoreFoundation
  CFRelease(ref: CFRef): void;
  CFGetTypeID(ref: CFRef): number;
  CFStringGetTypeID(): number;
  CFNumberGetTypeID(): number;
  CFDataGetTypeID(): number;
  CFArrayGetTypeID(): number;
  CFDictionaryGetTypeID(): number;
  CFDataCreate(bytes: Uint8Array, length: number): CFRef | null;
  CFDataGetLength(data: CFRef): number;
  CFDataGetBytes(data: CFRef, range: { location: number; length: number }, out: Buffer): void;
  CFDictionaryCreate(keys: CFRef[], values: CFRef[], count: number, keyCallBacks: bigint, valueCallBacks: bigint): CFRef | null;
  CFDictionaryGetValue(dict: CFRef, key: CFRef): CFRef | null;
  CFStringCreateWithCString(text: string, encoding: number): CFRef | null;
  CFStringGetLength(str: CFRef): number;
  CFStringGetMaximumSizeForEncoding(length: number, encoding: number): number;
  CFStringGetCString(str: CFRef, out: Buffer, size: number, encoding: number): boolean;
  CFNumberGetValue(num: CFRef, numberType: number, out: Buffer): boolean;
  CFArrayGetCount(array: CFRef): number;
  CFArrayGetValueAtIndex(array: CFRef, index: number): CFRef | null;
  CFURLCopyFileSystemPath(url: CFRef, pathStyle: number): CFRef | null;

  // Security.framework (every call returns an OSStatus; 0 is success)
  SecCodeCopyGuestWithAttributes(host: CFRef | null, attributes: CFRef, flags: number, out: CFOut): number;
  SecCodeCopyStaticCode(code: CFRef, flags: number, out: CFOut): number;
  SecCodeCopyPath(staticCode: CFRef, flags: number, out: CFOut): number;
  SecCodeCheckValidity(code: CFRef, flags: number, requirement: CFRef | null): number;
  SecStaticCodeCheckValidity(staticCode: CFRef, flags: number, requirement: CFRef | null): number;
  SecCodeCopySigningInformation(code: CFRef, flags: number, out: CFOut): number;
  SecCodeCopyDesignatedRequirement(code: CFRef, flags: number, out: CFOut): number;
  SecRequirementCopyString(requirement: CFRef, flags: number, out: CFOut): number;
  SecRequirementCreateWithString(text: CFRef, flags: number, out: CFOut): number;
  SecCertificateCopyCommonName(certificate: CFRef, out: CFOut): number;

  // libbsm
  audit_token_to_pid(token: AuditTokenValue): number;
  audit_token_to_euid(token: AuditTokenValue): number;
  audit_token_to_pidversion(token: AuditTokenValue): number;

  // libproc
  proc_pidpath(pid: number, out: Buffer, size: number): number;

  // Mach: the current audit token of a PID, to re-check the instance after reading by PID.
  /** task_name_for_pid(mach_task_self(), pid, &port); returns a kern_return_t. */
  task_name_for_pid(pid: number, out: [number]): number;
  /** task_info(task, flavor, info, &count); returns a kern_return_t. */
  task_info(task: number, flavor: number, out: Buffer, count: [number]): number;
  mach_port_deallocate(port: number): number;

  /** errno of the last call on this thread. */
  errno(): number;
}

// Values from Apple's headers (CSCommon.h, SecCode.h, SecStaticCode.h, CFString.h, CFNumber.h,
// CFURL.h, MacErrors.h, libproc.h, mach/task_info.h, errno.h).
export const kSecCSDefaultFlags = 0;
/** SecStaticCodeCheckValidity: validate every architecture of a universal binary, not only the one
 *  this Mac would run. Without it a fat file whose first slice is validly signed passes while another
 *  slice is not checked (CVE-2018-10470). */
export const kSecCSCheckAllArchitectures = 1 << 0;
export const kSecCSDoNotValidateResources = 1 << 2;
export const kSecCSSigningInformation = 1 << 1;
export const kSecCodeSignatureAdhoc = 0x0002;
export const kCFStringEncodingUTF8 = 0x08000100;
export const kCFNumberSInt64Type = 4;
export const kCFURLPOSIXPathStyle = 0;
export const PROC_PIDPATHINFO_MAXSIZE = 4096;
export const TASK_AUDIT_TOKEN = 15;
export const TASK_AUDIT_TOKEN_COUNT = 8;
export const KERN_SUCCESS = 0;
export const ESRCH = 3;

/** OSStatus values the layer reacts to. */
export const Status = {
  success: 0,
  /** kPOSIXErrorEPERM: the sandbox (or TCC) refused the lookup. */
  posixEPERM: 100001,
  /** kPOSIXErrorESRCH: the process is gone. */
  posixESRCH: 100003,
  errSecCSUnsigned: -67062,
  errSecCSSignatureFailed: -67061,
  errSecCSReqFailed: -67050,
  errSecCSNoSuchCode: -67065,
  errSecCSInvalidAttributeValues: -67066,
  errSecCSGuestInvalid: -67063,
  errSecCSStaticCodeChanged: -67034,
  errSecCSStaticCodeNotFound: -67068,
} as const;

/** Where each group of calls is loaded from. Production binds exactly DARWIN_LIBRARIES; a test
 *  binds the same declarations to a stand-in library compiled from C (see bindDarwinLibraries). */
export type DarwinLibraryPaths = Readonly<Record<LibName, string>>;

export const DARWIN_LIBRARIES: DarwinLibraryPaths = {
  security: '/System/Library/Frameworks/Security.framework/Security',
  coreFoundation: '/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation',
  bsm: '/usr/lib/libbsm.0.dylib',
  system: '/usr/lib/libSystem.B.dylib',
};

let cached: DarwinBindings | undefined;

/** Loads koffi and binds the frameworks, once. Throws (with a plain message) anywhere but macOS. */
export function loadDarwinBindings(): DarwinBindings {
  if (cached) return cached;
  if (process.platform !== 'darwin') {
    throw new Error(`the macOS native layer only loads on macOS (this is ${process.platform})`);
  }
  const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
  cached = bindDarwinLibraries(koffi, DARWIN_LIBRARIES);
  return cached;
}

export type LibName = 'security' | 'coreFoundation' | 'bsm' | 'system';
/** A C declaration: a prototype string, or (for by-value structs) name + result + argument types,
 *  where 'audit_token_t' and 'CFRange' stand for the structs made by darwinStructs(). */
type Declaration =
  | { lib: LibName; proto: string }
  | { lib: LibName; name: string; result: string; args: string[] };

/** Every C function the layer binds, in one table (so a test can parse each one off macOS). */
export const DECLARATIONS = {
  CFRelease: { lib: 'coreFoundation', proto: 'void CFRelease(void *ref)' },
  CFGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFGetTypeID(void *ref)' },
  CFStringGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFStringGetTypeID()' },
  CFNumberGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFNumberGetTypeID()' },
  CFDataGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFDataGetTypeID()' },
  CFArrayGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFArrayGetTypeID()' },
  CFDictionaryGetTypeID: { lib: 'coreFoundation', proto: 'unsigned long CFDictionaryGetTypeID()' },
  CFDataCreate: { lib: 'coreFoundation', proto: 'void *CFDataCreate(void *allocator, const uint8_t *bytes, long length)' },
  CFDataGetLength: { lib: 'coreFoundation', proto: 'long CFDataGetLength(void *data)' },
  CFDataGetBytes: { lib: 'coreFoundation', name: 'CFDataGetBytes', result: 'void', args: ['void *', 'CFRange', 'void *'] },
  CFDictionaryCreate: {
    lib: 'coreFoundation',
    proto: 'void *CFDictionaryCreate(void *allocator, void **keys, void **values, long count, void *keyCallBacks, void *valueCallBacks)',
  },
  CFDictionaryGetValue: { lib: 'coreFoundation', proto: 'void *CFDictionaryGetValue(void *dict, void *key)' },
  CFStringCreateWithCString: { lib: 'coreFoundation', proto: 'void *CFStringCreateWithCString(void *allocator, const char *text, uint32_t encoding)' },
  CFStringGetLength: { lib: 'coreFoundation', proto: 'long CFStringGetLength(void *str)' },
  CFStringGetMaximumSizeForEncoding: { lib: 'coreFoundation', proto: 'long CFStringGetMaximumSizeForEncoding(long length, uint32_t encoding)' },
  CFStringGetCString: { lib: 'coreFoundation', proto: 'uint8_t CFStringGetCString(void *str, void *buffer, long size, uint32_t encoding)' },
  CFNumberGetValue: { lib: 'coreFoundation', proto: 'uint8_t CFNumberGetValue(void *num, long numberType, void *out)' },
  CFArrayGetCount: { lib: 'coreFoundation', proto: 'long CFArrayGetCount(void *array)' },
  CFArrayGetValueAtIndex: { lib: 'coreFoundation', proto: 'void *CFArrayGetValueAtIndex(void *array, long index)' },
  CFURLCopyFileSystemPath: { lib: 'coreFoundation', proto: 'void *CFURLCopyFileSystemPath(void *url, long pathStyle)' },

  SecCodeCopyGuestWithAttributes: {
    lib: 'security',
    proto: 'int32_t SecCodeCopyGuestWithAttributes(void *host, void *attributes, uint32_t flags, _Out_ void **guest)',
  },
  SecCodeCopyStaticCode: { lib: 'security', proto: 'int32_t SecCodeCopyStaticCode(void *code, uint32_t flags, _Out_ void **staticCode)' },
  SecCodeCopyPath: { lib: 'security', proto: 'int32_t SecCodeCopyPath(void *staticCode, uint32_t flags, _Out_ void **path)' },
  SecCodeCheckValidity: { lib: 'security', proto: 'int32_t SecCodeCheckValidity(void *code, uint32_t flags, void *requirement)' },
  SecStaticCodeCheckValidity: { lib: 'security', proto: 'int32_t SecStaticCodeCheckValidity(void *staticCode, uint32_t flags, void *requirement)' },
  SecCodeCopySigningInformation: {
    lib: 'security',
    proto: 'int32_t SecCodeCopySigningInformation(void *code, uint32_t flags, _Out_ void **information)',
  },
  SecCodeCopyDesignatedRequirement: {
    lib: 'security',
    proto: 'int32_t SecCodeCopyDesignatedRequirement(void *code, uint32_t flags, _Out_ void **requirement)',
  },
  SecRequirementCopyString: { lib: 'security', proto: 'int32_t SecRequirementCopyString(void *requirement, uint32_t flags, _Out_ void **text)' },
  SecRequirementCreateWithString: {
    lib: 'security',
    proto: 'int32_t SecRequirementCreateWithString(void *text, uint32_t flags, _Out_ void **requirement)',
  },
  SecCertificateCopyCommonName: { lib: 'security', proto: 'int32_t SecCertificateCopyCommonName(void *certificate, _Out_ void **commonName)' },

  audit_token_to_pid: { lib: 'bsm', name: 'audit_token_to_pid', result: 'int', args: ['audit_token_t'] },
  audit_token_to_euid: { lib: 'bsm', name: 'audit_token_to_euid', result: 'uint32_t', args: ['audit_token_t'] },
  audit_token_to_pidversion: { lib: 'bsm', name: 'audit_token_to_pidversion', result: 'int', args: ['audit_token_t'] },

  proc_pidpath: { lib: 'system', proto: 'int proc_pidpath(int pid, void *buffer, uint32_t size)' },
  task_name_for_pid: { lib: 'system', proto: 'int task_name_for_pid(uint32_t target, int pid, _Out_ uint32_t *task)' },
  task_info: { lib: 'system', proto: 'int task_info(uint32_t task, uint32_t flavor, void *info, _Inout_ uint32_t *count)' },
  mach_port_deallocate: { lib: 'system', proto: 'int mach_port_deallocate(uint32_t task, uint32_t name)' },
} as const satisfies Record<string, Declaration>;

export type DeclarationName = keyof typeof DECLARATIONS;
type KoffiFunction = ReturnType<Koffi.LibraryHandle['func']>;

/** The by-value structs: audit_token_t (8 × uint32 = 32 bytes) and CFRange (2 × CFIndex = 16 bytes). */
export function darwinStructs(koffi: Pick<typeof Koffi, 'struct' | 'array'>): { audit_token_t: Koffi.TypeObject; CFRange: Koffi.TypeObject } {
  // koffi registers struct names globally: make them once per process.
  structs ??= {
    audit_token_t: koffi.struct('flowtop_audit_token_t', { val: koffi.array('uint32_t', 8) }),
    CFRange: koffi.struct('flowtop_CFRange', { location: 'long', length: 'long' }),
  };
  return structs;
}
let structs: { audit_token_t: Koffi.TypeObject; CFRange: Koffi.TypeObject } | undefined;

/** Turns one declaration into the arguments koffi's func()/proto() take. */
export function declarationArgs(
  declaration: Declaration,
  structs: ReturnType<typeof darwinStructs>,
): [string] | [string, string, Array<string | Koffi.TypeObject>] {
  if ('proto' in declaration) return [declaration.proto];
  const args = declaration.args.map((arg) => (arg === 'audit_token_t' || arg === 'CFRange' ? structs[arg] : arg));
  return [declaration.name, declaration.result, args];
}

/** Binds every declaration to the libraries at `paths`, on any platform. Only loadDarwinBindings
 *  (macOS, the system's own frameworks) is used by flowtop; this is the seam through which
 *  test/native-darwin/marshalling-against-c.test.ts checks each declaration against C compiled with
 *  the same signatures, because no Mac runs this project's tests. */
export function bindDarwinLibraries(
  koffi: Pick<typeof Koffi, 'load' | 'decode' | 'struct' | 'array' | 'errno'>,
  paths: DarwinLibraryPaths,
): DarwinBindings {
  const libs: Record<LibName, Koffi.LibraryHandle> = {
    security: koffi.load(paths.security),
    coreFoundation: koffi.load(paths.coreFoundation),
    bsm: koffi.load(paths.bsm),
    system: koffi.load(paths.system),
  };
  const security = libs.security;
  const cf = libs.coreFoundation;
  const system = libs.system;
  const byValue = darwinStructs(koffi);

  // A CFStringRef constant is a global variable holding the pointer: read the variable's value.
  const constant = (lib: Koffi.LibraryHandle, name: string): CFRef => {
    const value = koffi.decode(lib.symbol(name), 'void *') as CFRef | null;
    if (!value) throw new Error(`${name} is missing from the loaded framework`);
    return value;
  };
  // The callback structs are passed by address: the symbol's own address is what CFDictionaryCreate wants.
  const address = (lib: Koffi.LibraryHandle, name: string): bigint => lib.symbol(name) as bigint;
  // mach_task_self() is a macro over the global mach_task_self_ (a mach_port_t).
  const machTaskSelf = koffi.decode(system.symbol('mach_task_self_'), 'uint32_t') as number;

  const f = {} as Record<DeclarationName, KoffiFunction>;
  for (const [name, declaration] of Object.entries(DECLARATIONS) as Array<[DeclarationName, Declaration]>) {
    const args = declarationArgs(declaration, byValue);
    const lib = libs[declaration.lib];
    f[name] = args.length === 1 ? lib.func(args[0]) : lib.func(args[0], args[1], args[2]);
  }

  return {
    symbols: {
      kSecGuestAttributeAudit: constant(security, 'kSecGuestAttributeAudit'),
      kSecCodeInfoIdentifier: constant(security, 'kSecCodeInfoIdentifier'),
      kSecCodeInfoTeamIdentifier: constant(security, 'kSecCodeInfoTeamIdentifier'),
      kSecCodeInfoUnique: constant(security, 'kSecCodeInfoUnique'),
      kSecCodeInfoFlags: constant(security, 'kSecCodeInfoFlags'),
      kSecCodeInfoCertificates: constant(security, 'kSecCodeInfoCertificates'),
      kSecCodeInfoPList: constant(security, 'kSecCodeInfoPList'),
      kSecCodeInfoMainExecutable: constant(security, 'kSecCodeInfoMainExecutable'),
      kCFBundleNameKey: constant(cf, 'kCFBundleNameKey'),
      kCFTypeDictionaryKeyCallBacks: address(cf, 'kCFTypeDictionaryKeyCallBacks'),
      kCFTypeDictionaryValueCallBacks: address(cf, 'kCFTypeDictionaryValueCallBacks'),
    },
    CFRelease: (ref) => void f.CFRelease(ref),
    CFGetTypeID: (ref) => Number(f.CFGetTypeID(ref)),
    CFStringGetTypeID: () => Number(f.CFStringGetTypeID()),
    CFNumberGetTypeID: () => Number(f.CFNumberGetTypeID()),
    CFDataGetTypeID: () => Number(f.CFDataGetTypeID()),
    CFArrayGetTypeID: () => Number(f.CFArrayGetTypeID()),
    CFDictionaryGetTypeID: () => Number(f.CFDictionaryGetTypeID()),
    CFDataCreate: (bytes, length) => f.CFDataCreate(null, bytes, length) as CFRef | null,
    CFDataGetLength: (data) => Number(f.CFDataGetLength(data)),
    CFDataGetBytes: (data, range, out) => void f.CFDataGetBytes(data, range, out),
    CFDictionaryCreate: (keys, values, count, kcb, vcb) => f.CFDictionaryCreate(null, keys, values, count, kcb, vcb) as CFRef | null,
    CFDictionaryGetValue: (dict, key) => f.CFDictionaryGetValue(dict, key) as CFRef | null,
    CFStringCreateWithCString: (text, encoding) => f.CFStringCreateWithCString(null, text, encoding) as CFRef | null,
    CFStringGetLength: (str) => Number(f.CFStringGetLength(str)),
    CFStringGetMaximumSizeForEncoding: (length, encoding) => Number(f.CFStringGetMaximumSizeForEncoding(length, encoding)),
    CFStringGetCString: (str, out, size, encoding) => Boolean(f.CFStringGetCString(str, out, size, encoding)),
    CFNumberGetValue: (num, type, out) => Boolean(f.CFNumberGetValue(num, type, out)),
    CFArrayGetCount: (array) => Number(f.CFArrayGetCount(array)),
    CFArrayGetValueAtIndex: (array, index) => f.CFArrayGetValueAtIndex(array, index) as CFRef | null,
    CFURLCopyFileSystemPath: (url, style) => f.CFURLCopyFileSystemPath(url, style) as CFRef | null,

    SecCodeCopyGuestWithAttributes: (host, attrs, flags, out) => f.SecCodeCopyGuestWithAttributes(host, attrs, flags, out) as number,
    SecCodeCopyStaticCode: (code, flags, out) => f.SecCodeCopyStaticCode(code, flags, out) as number,
    SecCodeCopyPath: (code, flags, out) => f.SecCodeCopyPath(code, flags, out) as number,
    SecCodeCheckValidity: (code, flags, req) => f.SecCodeCheckValidity(code, flags, req) as number,
    SecStaticCodeCheckValidity: (code, flags, req) => f.SecStaticCodeCheckValidity(code, flags, req) as number,
    SecCodeCopySigningInformation: (code, flags, out) => f.SecCodeCopySigningInformation(code, flags, out) as number,
    SecCodeCopyDesignatedRequirement: (code, flags, out) => f.SecCodeCopyDesignatedRequirement(code, flags, out) as number,
    SecRequirementCopyString: (req, flags, out) => f.SecRequirementCopyString(req, flags, out) as number,
    SecRequirementCreateWithString: (text, flags, out) => f.SecRequirementCreateWithString(text, flags, out) as number,
    SecCertificateCopyCommonName: (cert, out) => f.SecCertificateCopyCommonName(cert, out) as number,

    audit_token_to_pid: (token) => f.audit_token_to_pid(token) as number,
    audit_token_to_euid: (token) => f.audit_token_to_euid(token) as number,
    audit_token_to_pidversion: (token) => f.audit_token_to_pidversion(token) as number,

    proc_pidpath: (pid, out, size) => f.proc_pidpath(pid, out, size) as number,
    task_name_for_pid: (pid, out) => f.task_name_for_pid(machTaskSelf, pid, out) as number,
    task_info: (task, flavor, out, count) => f.task_info(task, flavor, out, count) as number,
    mach_port_deallocate: (port) => f.mach_port_deallocate(machTaskSelf, port) as number,

    errno: () => koffi.errno(),
  };
}
