// A recording fake of DarwinBindings: a small CoreFoundation object heap with reference counts, a
// process table, and Security.framework behaviour for the calls the darwin layer makes. It checks the
// caller the way CF would punish it: use after free, double release and leaks are all recorded.
// It models macOS from Apple's documentation; it has not been compared with a real Mac (real.test.ts is that check).
import type { AuditTokenValue, CFOut, CFRef, DarwinBindings, DarwinSymbols } from '../../src/native/darwin/bindings.js';
import { encodeAuditToken, decodeAuditToken } from '../../src/protocol/tokens.js';

export type SignerClass = 'apple' | 'app-store' | 'developer-id';

export interface FakeSigning {
  identifier: string;
  teamId?: string;
  cdhash: Uint8Array;
  flags: number;
  /** Common names, leaf first. */
  certificates: string[];
  designated: string;
  classes: SignerClass[];
  bundleName?: string;
}

export type FakeCall = keyof Omit<DarwinBindings, 'symbols'>;

export interface FakeProcess {
  pid: number;
  pidversion: number;
  euid?: number;
  /** The main executable (what proc_pidpath and kSecCodeInfoMainExecutable name). */
  path: string;
  /** The bundle directory for bundled code: what SecCodeCopyPath names instead of `path`. */
  bundle?: string;
  /** Absent: unsigned code. */
  signing?: FakeSigning;
  /** Status to return from a call for this process instead of its normal result. */
  fail?: Partial<Record<FakeCall, number>>;
}

type Kind = 'string' | 'number' | 'data' | 'array' | 'dictionary' | 'code' | 'static-code' | 'url' | 'requirement' | 'certificate';

interface FakeObject {
  ref: CFRef;
  kind: Kind;
  refs: number;
  immortal: boolean;
  label: string;
  text?: string;
  num?: bigint;
  bytes?: Uint8Array;
  items?: CFRef[];
  entries?: Array<[CFRef, CFRef]>;
  /** Containers created with the CFType callbacks hold a reference on their children. */
  retainsChildren?: boolean;
  process?: FakeProcess;
}

const TYPE_IDS: Record<Kind, number> = {
  string: 7, number: 22, data: 20, array: 19, dictionary: 18,
  code: 101, 'static-code': 101, url: 29, requirement: 102, certificate: 103,
};

export interface CallRecord {
  name: FakeCall;
  args: unknown[];
}

export interface GuestRequest {
  keys: CFRef[];
  valueKinds: string[];
  tokenBytes?: Uint8Array;
  keyCallBacks: bigint;
  valueCallBacks: bigint;
}

export class FakeDarwin implements DarwinBindings {
  readonly calls: CallRecord[] = [];
  readonly errors: string[] = [];
  readonly guestRequests: GuestRequest[] = [];
  readonly staticValidityFlags: number[] = [];
  readonly signingInfoFlags: number[] = [];
  readonly processes = new Map<number, FakeProcess>();
  readonly symbols: DarwinSymbols;
  /** When true, task_name_for_pid is refused (as for another user's process without root). */
  taskNameDenied = false;

  private readonly heap = new Map<CFRef, FakeObject>();
  private readonly ports = new Map<number, FakeProcess>();
  private readonly hooks = new Map<FakeCall, Array<() => void>>();
  private readonly dictCallBacks = new Map<CFRef, [bigint, bigint]>();
  private nextRef = 0x1000n;
  private nextPort = 0x103;
  private lastErrno = 0;

  constructor(processes: FakeProcess[] = []) {
    for (const p of processes) this.spawn(p);
    const constant = (name: string): CFRef => this.alloc('string', { text: name, immortal: true, label: name });
    this.symbols = {
      kSecGuestAttributeAudit: constant('audit'),
      kSecCodeInfoIdentifier: constant('identifier'),
      kSecCodeInfoTeamIdentifier: constant('teamid'),
      kSecCodeInfoUnique: constant('unique'),
      kSecCodeInfoFlags: constant('flags'),
      kSecCodeInfoCertificates: constant('certificates'),
      kSecCodeInfoPList: constant('info-plist'),
      kSecCodeInfoMainExecutable: constant('main-executable'),
      kCFBundleNameKey: constant('CFBundleName'),
      kCFTypeDictionaryKeyCallBacks: 0xcb01n,
      kCFTypeDictionaryValueCallBacks: 0xcb02n,
    };
  }

  // ---- test controls -------------------------------------------------------------------------

  /** Starts (or replaces: PID reuse) the process at p.pid. */
  spawn(p: FakeProcess): void {
    this.processes.set(p.pid, p);
  }

  exit(pid: number): void {
    this.processes.delete(pid);
  }

  /** Runs `fn` once, just before the next call named `name` takes effect. */
  before(name: FakeCall, fn: () => void): void {
    const list = this.hooks.get(name) ?? [];
    list.push(fn);
    this.hooks.set(name, list);
  }

  /** CF objects still alive that the caller owned (constants excluded). */
  live(): string[] {
    return [...this.heap.values()].filter((o) => !o.immortal && o.refs > 0).map((o) => `${o.kind}:${o.label}`);
  }

  livePorts(): number[] {
    return [...this.ports.keys()];
  }

  callNames(): FakeCall[] {
    return this.calls.map((c) => c.name);
  }

  count(name: FakeCall): number {
    return this.calls.filter((c) => c.name === name).length;
  }

  /** Creates a CF object as a test would find it (for reader tests). Owned by the caller. */
  make(kind: 'string', value: string): CFRef;
  make(kind: 'number', value: bigint): CFRef;
  make(kind: 'data', value: Uint8Array): CFRef;
  make(kind: 'array', value: CFRef[]): CFRef;
  make(kind: 'string' | 'number' | 'data' | 'array', value: string | bigint | Uint8Array | CFRef[]): CFRef {
    if (kind === 'string') return this.alloc('string', { text: value as string });
    if (kind === 'number') return this.alloc('number', { num: value as bigint });
    if (kind === 'data') return this.alloc('data', { bytes: Uint8Array.from(value as Uint8Array) });
    return this.alloc('array', { items: value as CFRef[], retainsChildren: false });
  }

  // ---- CoreFoundation ------------------------------------------------------------------------

  CFRelease(ref: CFRef): void {
    this.record('CFRelease', [ref]);
    this.release(ref);
  }
  CFGetTypeID(ref: CFRef): number {
    this.record('CFGetTypeID', [ref]);
    return TYPE_IDS[this.get(ref, 'CFGetTypeID').kind];
  }
  CFStringGetTypeID(): number { return TYPE_IDS.string; }
  CFNumberGetTypeID(): number { return TYPE_IDS.number; }
  CFDataGetTypeID(): number { return TYPE_IDS.data; }
  CFArrayGetTypeID(): number { return TYPE_IDS.array; }
  CFDictionaryGetTypeID(): number { return TYPE_IDS.dictionary; }

  CFDataCreate(bytes: Uint8Array, length: number): CFRef | null {
    this.record('CFDataCreate', [length]);
    return this.alloc('data', { bytes: Uint8Array.from(bytes.subarray(0, length)) });
  }
  CFDataGetLength(data: CFRef): number {
    this.record('CFDataGetLength', [data]);
    return this.get(data, 'CFDataGetLength', 'data').bytes!.length;
  }
  CFDataGetBytes(data: CFRef, range: { location: number; length: number }, out: Buffer): void {
    this.record('CFDataGetBytes', [data, range]);
    const bytes = this.get(data, 'CFDataGetBytes', 'data').bytes!;
    if (range.location + range.length > bytes.length || range.length > out.length) {
      this.errors.push('CFDataGetBytes: range out of bounds');
      return;
    }
    out.set(bytes.subarray(range.location, range.location + range.length));
  }
  CFDictionaryCreate(keys: CFRef[], values: CFRef[], count: number, keyCallBacks: bigint, valueCallBacks: bigint): CFRef | null {
    this.record('CFDictionaryCreate', [keys, values, count, keyCallBacks, valueCallBacks]);
    const cfType = keyCallBacks === this.symbols.kCFTypeDictionaryKeyCallBacks && valueCallBacks === this.symbols.kCFTypeDictionaryValueCallBacks;
    const entries: Array<[CFRef, CFRef]> = [];
    for (let i = 0; i < count; i++) {
      const key = keys[i]!;
      const value = values[i]!;
      this.get(key, 'CFDictionaryCreate key');
      this.get(value, 'CFDictionaryCreate value');
      if (cfType) {
        this.retain(key);
        this.retain(value);
      }
      entries.push([key, value]);
    }
    const dict = this.alloc('dictionary', { entries, retainsChildren: cfType, label: 'attributes' });
    this.dictCallBacks.set(dict, [keyCallBacks, valueCallBacks]);
    return dict;
  }
  CFDictionaryGetValue(dict: CFRef, key: CFRef): CFRef | null {
    this.record('CFDictionaryGetValue', [dict, key]);
    const entry = this.get(dict, 'CFDictionaryGetValue', 'dictionary').entries!.find(([k]) => k === key);
    return entry ? entry[1] : null;
  }
  CFStringCreateWithCString(text: string): CFRef | null {
    this.record('CFStringCreateWithCString', [text]);
    return this.alloc('string', { text });
  }
  CFStringGetLength(str: CFRef): number {
    this.record('CFStringGetLength', [str]);
    return this.get(str, 'CFStringGetLength', 'string').text!.length;
  }
  CFStringGetMaximumSizeForEncoding(length: number): number {
    return length * 3;
  }
  CFStringGetCString(str: CFRef, out: Buffer, size: number): boolean {
    this.record('CFStringGetCString', [str, size]);
    const encoded = Buffer.from(this.get(str, 'CFStringGetCString', 'string').text!, 'utf8');
    if (encoded.length + 1 > size || size > out.length) return false;
    encoded.copy(out);
    out[encoded.length] = 0;
    return true;
  }
  CFNumberGetValue(num: CFRef, numberType: number, out: Buffer): boolean {
    this.record('CFNumberGetValue', [num, numberType]);
    if (numberType !== 4 || out.length < 8) return false;
    out.writeBigInt64LE(this.get(num, 'CFNumberGetValue', 'number').num!, 0);
    return true;
  }
  CFArrayGetCount(array: CFRef): number {
    this.record('CFArrayGetCount', [array]);
    return this.get(array, 'CFArrayGetCount', 'array').items!.length;
  }
  CFArrayGetValueAtIndex(array: CFRef, index: number): CFRef | null {
    this.record('CFArrayGetValueAtIndex', [array, index]);
    return this.get(array, 'CFArrayGetValueAtIndex', 'array').items![index] ?? null;
  }
  CFURLCopyFileSystemPath(url: CFRef, pathStyle: number): CFRef | null {
    this.record('CFURLCopyFileSystemPath', [url, pathStyle]);
    return this.alloc('string', { text: this.get(url, 'CFURLCopyFileSystemPath', 'url').text!, label: 'path' });
  }

  // ---- Security.framework --------------------------------------------------------------------

  SecCodeCopyGuestWithAttributes(host: CFRef | null, attributes: CFRef, flags: number, out: CFOut): number {
    this.record('SecCodeCopyGuestWithAttributes', [host, attributes, flags]);
    const dict = this.get(attributes, 'SecCodeCopyGuestWithAttributes', 'dictionary');
    const [kcb, vcb] = this.dictCallBacks.get(attributes) ?? [0n, 0n];
    const request: GuestRequest = {
      keys: dict.entries!.map(([k]) => k),
      valueKinds: dict.entries!.map(([, v]) => this.heap.get(v)?.kind ?? 'freed'),
      keyCallBacks: kcb,
      valueCallBacks: vcb,
    };
    const audit = dict.entries!.find(([k]) => k === this.symbols.kSecGuestAttributeAudit);
    if (audit) {
      const data = this.heap.get(audit[1]);
      if (data?.kind === 'data' && data.refs > 0) request.tokenBytes = Uint8Array.from(data.bytes!);
    }
    this.guestRequests.push(request);
    if (!request.tokenBytes || request.tokenBytes.length !== 32) return -67066; // errSecCSInvalidAttributeValues
    const token = decodeAuditToken(request.tokenBytes)!;
    const p = this.processes.get(token.pid);
    if (!p || p.pidversion !== token.pidversion) return 100003;
    const forced = p.fail?.SecCodeCopyGuestWithAttributes;
    if (forced !== undefined) return forced;
    out[0] = this.alloc('code', { process: p, label: `code ${p.path}` });
    return 0;
  }
  SecCodeCopyStaticCode(code: CFRef, flags: number, out: CFOut): number {
    this.record('SecCodeCopyStaticCode', [code, flags]);
    const p = this.get(code, 'SecCodeCopyStaticCode', 'code').process!;
    const forced = p.fail?.SecCodeCopyStaticCode;
    if (forced !== undefined) return forced;
    out[0] = this.alloc('static-code', { process: p, label: `static ${p.path}` });
    return 0;
  }
  SecCodeCopyPath(staticCode: CFRef, flags: number, out: CFOut): number {
    this.record('SecCodeCopyPath', [staticCode, flags]);
    const p = this.get(staticCode, 'SecCodeCopyPath', 'static-code').process!;
    const forced = p.fail?.SecCodeCopyPath;
    if (forced !== undefined) return forced;
    // Apple: "For bundles, it points to the directory containing the entire bundle."
    const location = p.bundle ?? p.path;
    out[0] = this.alloc('url', { text: location, label: `url ${location}` });
    return 0;
  }
  SecCodeCheckValidity(code: CFRef, flags: number, requirement: CFRef | null): number {
    this.record('SecCodeCheckValidity', [code, flags, requirement]);
    const p = this.get(code, 'SecCodeCheckValidity', 'code').process!;
    if (requirement === null) {
      const forced = p.fail?.SecCodeCheckValidity;
      if (forced !== undefined) return forced;
      return p.signing ? 0 : -67062;
    }
    const text = this.get(requirement, 'SecCodeCheckValidity requirement', 'requirement').text!;
    return p.signing && satisfies(p.signing.classes, text) ? 0 : -67050;
  }
  SecStaticCodeCheckValidity(staticCode: CFRef, flags: number, requirement: CFRef | null): number {
    this.record('SecStaticCodeCheckValidity', [staticCode, flags, requirement]);
    this.staticValidityFlags.push(flags);
    const p = this.get(staticCode, 'SecStaticCodeCheckValidity', 'static-code').process!;
    const forced = p.fail?.SecStaticCodeCheckValidity;
    if (forced !== undefined) return forced;
    return p.signing ? 0 : -67062;
  }
  SecCodeCopySigningInformation(code: CFRef, flags: number, out: CFOut): number {
    this.record('SecCodeCopySigningInformation', [code, flags]);
    this.signingInfoFlags.push(flags);
    const p = this.get(code, 'SecCodeCopySigningInformation').process!;
    const forced = p.fail?.SecCodeCopySigningInformation;
    if (forced !== undefined) return forced;
    const s = p.signing;
    const sym = this.symbols;
    // Generic information, there whatever the flags and even for unsigned code (Apple's
    // kSecCodeInfoMainExecutable): the executable file, inside the bundle for bundled code.
    const entries: Array<[CFRef, CFRef]> = [[sym.kSecCodeInfoMainExecutable, this.alloc('url', { text: p.path, label: `main executable ${p.path}` })]];
    if (s) {
      entries.push([sym.kSecCodeInfoIdentifier, this.alloc('string', { text: s.identifier })]);
      if (s.teamId) entries.push([sym.kSecCodeInfoTeamIdentifier, this.alloc('string', { text: s.teamId })]);
      entries.push([sym.kSecCodeInfoUnique, this.alloc('data', { bytes: s.cdhash })]);
      entries.push([sym.kSecCodeInfoFlags, this.alloc('number', { num: BigInt(s.flags) })]);
      const certs = s.certificates.map((cn) => this.alloc('certificate', { text: cn, label: cn }));
      entries.push([sym.kSecCodeInfoCertificates, this.alloc('array', { items: certs, retainsChildren: true })]);
      if (s.bundleName) {
        const name = this.alloc('string', { text: s.bundleName });
        entries.push([sym.kSecCodeInfoPList, this.alloc('dictionary', { entries: [[sym.kCFBundleNameKey, name]], retainsChildren: true, label: 'plist' })]);
      }
    }
    // The dictionary took over the single reference of each fresh child (keys are constants).
    for (const [k] of entries) this.retain(k);
    out[0] = this.alloc('dictionary', { entries, retainsChildren: true, label: 'signing-information' });
    return 0;
  }
  SecCodeCopyDesignatedRequirement(code: CFRef, flags: number, out: CFOut): number {
    this.record('SecCodeCopyDesignatedRequirement', [code, flags]);
    const p = this.get(code, 'SecCodeCopyDesignatedRequirement').process!;
    const forced = p.fail?.SecCodeCopyDesignatedRequirement;
    if (forced !== undefined) return forced;
    if (!p.signing) return -67062;
    out[0] = this.alloc('requirement', { text: p.signing.designated, label: 'designated', process: p });
    return 0;
  }
  SecRequirementCopyString(requirement: CFRef, flags: number, out: CFOut): number {
    this.record('SecRequirementCopyString', [requirement, flags]);
    const req = this.get(requirement, 'SecRequirementCopyString', 'requirement');
    const forced = req.process?.fail?.SecRequirementCopyString;
    if (forced !== undefined) return forced;
    out[0] = this.alloc('string', { text: req.text!, label: 'requirement text' });
    return 0;
  }
  SecRequirementCreateWithString(text: CFRef, flags: number, out: CFOut): number {
    this.record('SecRequirementCreateWithString', [text, flags]);
    out[0] = this.alloc('requirement', { text: this.get(text, 'SecRequirementCreateWithString', 'string').text!, label: 'class requirement' });
    return 0;
  }
  SecCertificateCopyCommonName(certificate: CFRef, out: CFOut): number {
    this.record('SecCertificateCopyCommonName', [certificate]);
    out[0] = this.alloc('string', { text: this.get(certificate, 'SecCertificateCopyCommonName', 'certificate').text!, label: 'common name' });
    return 0;
  }

  // ---- libbsm, libproc, Mach -----------------------------------------------------------------

  audit_token_to_pid(token: AuditTokenValue): number {
    this.record('audit_token_to_pid', [token]);
    return this.field(token, 5);
  }
  audit_token_to_euid(token: AuditTokenValue): number {
    this.record('audit_token_to_euid', [token]);
    return this.field(token, 1);
  }
  audit_token_to_pidversion(token: AuditTokenValue): number {
    this.record('audit_token_to_pidversion', [token]);
    return this.field(token, 7);
  }
  proc_pidpath(pid: number, out: Buffer, size: number): number {
    this.record('proc_pidpath', [pid, size]);
    const p = this.processes.get(pid);
    if (!p) {
      this.lastErrno = 3;
      return 0;
    }
    const encoded = Buffer.from(p.path, 'utf8');
    encoded.copy(out, 0, 0, Math.min(encoded.length, size - 1));
    out[Math.min(encoded.length, size - 1)] = 0;
    return encoded.length;
  }
  task_name_for_pid(pid: number, out: [number]): number {
    this.record('task_name_for_pid', [pid]);
    const p = this.processes.get(pid);
    if (this.taskNameDenied || !p) return 5; // KERN_FAILURE
    const port = this.nextPort++;
    this.ports.set(port, p);
    out[0] = port;
    return 0;
  }
  task_info(task: number, flavor: number, out: Buffer, count: [number]): number {
    this.record('task_info', [task, flavor, count[0]]);
    const p = this.ports.get(task);
    if (!p || flavor !== 15 || count[0] < 8) return 4; // KERN_INVALID_ARGUMENT
    encodeAuditToken({ auid: 501, euid: p.euid ?? 501, egid: 20, ruid: p.euid ?? 501, rgid: 20, pid: p.pid, asid: 100, pidversion: p.pidversion }).copy(out);
    count[0] = 8;
    return 0;
  }
  mach_port_deallocate(port: number): number {
    this.record('mach_port_deallocate', [port]);
    if (!this.ports.delete(port)) {
      this.errors.push(`mach_port_deallocate of unknown port ${port}`);
      return 15; // KERN_INVALID_NAME
    }
    return 0;
  }
  errno(): number {
    return this.lastErrno;
  }

  // ---- heap ----------------------------------------------------------------------------------

  private record(name: FakeCall, args: unknown[]): void {
    const hooks = this.hooks.get(name);
    if (hooks?.length) {
      this.hooks.delete(name);
      for (const hook of hooks) hook();
    }
    this.calls.push({ name, args });
  }

  private alloc(kind: Kind, init: Partial<FakeObject> = {}): CFRef {
    const ref = this.nextRef;
    this.nextRef += 0x10n;
    this.heap.set(ref, { ref, kind, refs: 1, immortal: false, label: init.text ?? kind, ...init });
    return ref;
  }

  private get(ref: CFRef, call: string, kind?: Kind): FakeObject {
    const o = this.heap.get(ref);
    if (!o) throw new Error(`${call}: ${String(ref)} is not a CF object`);
    if (o.refs <= 0) this.errors.push(`${call}: use after free of ${o.kind}:${o.label}`);
    if (kind && o.kind !== kind) throw new Error(`${call}: expected ${kind}, got ${o.kind}`);
    return o;
  }

  private retain(ref: CFRef): void {
    const o = this.heap.get(ref);
    if (o && !o.immortal) o.refs++;
  }

  private release(ref: CFRef): void {
    const o = this.heap.get(ref);
    if (!o) {
      this.errors.push(`CFRelease of unknown ${String(ref)}`);
      return;
    }
    if (o.immortal) return;
    if (o.refs <= 0) {
      this.errors.push(`double CFRelease of ${o.kind}:${o.label}`);
      return;
    }
    o.refs--;
    if (o.refs === 0 && o.retainsChildren) {
      for (const child of o.items ?? []) this.release(child);
      for (const [k, v] of o.entries ?? []) {
        this.release(k);
        this.release(v);
      }
    }
  }

  private field(token: AuditTokenValue, index: number): number {
    if (!Array.isArray(token.val) || token.val.length !== 8) throw new Error('audit_token_t must be 8 uint32 values');
    return token.val[index]! >>> 0;
  }
}

function satisfies(classes: SignerClass[], requirement: string): boolean {
  if (requirement === 'anchor apple') return classes.includes('apple');
  if (requirement.includes('Apple Mac OS Application Signing')) return classes.includes('app-store');
  if (requirement.includes('1.2.840.113635.100.6.1.13')) return classes.includes('developer-id');
  return false;
}

export function tokenOf(p: Pick<FakeProcess, 'pid' | 'pidversion' | 'euid'>): Uint8Array {
  return new Uint8Array(
    encodeAuditToken({ auid: 501, euid: p.euid ?? 501, egid: 20, ruid: p.euid ?? 501, rgid: 20, pid: p.pid, asid: 100, pidversion: p.pidversion }),
  );
}

export const CURL: FakeProcess = {
  pid: 4242,
  pidversion: 91,
  euid: 501,
  path: '/usr/bin/curl',
  signing: {
    identifier: 'com.apple.curl',
    cdhash: Uint8Array.from([0xab, 0xcd, 0x01, 0x02]),
    flags: 0,
    certificates: ['Software Signing', 'Apple Code Signing Certification Authority', 'Apple Root CA'],
    designated: 'identifier "com.apple.curl" and anchor apple',
    classes: ['apple'],
  },
};

export const DEV_ID_APP: FakeProcess = {
  pid: 700,
  pidversion: 3,
  euid: 501,
  path: '/Applications/Example.app/Contents/MacOS/Example',
  bundle: '/Applications/Example.app',
  signing: {
    identifier: 'com.example.app',
    teamId: 'EXAMPLE123',
    cdhash: Uint8Array.from([1, 2, 3, 4, 5]),
    flags: 0x10000,
    certificates: ['Developer ID Application: Example Corp (EXAMPLE123)', 'Developer ID Certification Authority', 'Apple Root CA'],
    designated: 'anchor apple generic and identifier "com.example.app" and certificate leaf[subject.OU] = EXAMPLE123',
    classes: ['developer-id'],
    bundleName: 'Example',
  },
};
