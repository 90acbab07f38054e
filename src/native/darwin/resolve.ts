// One audit token → one Attribution, over the injected DarwinBindings.
//
// Secure route (the token names one process instance; the kernel vouches for it):
//   SecCodeCopyGuestWithAttributes({kSecGuestAttributeAudit: token as CFData})
//   → SecCodeCopyStaticCode → SecCodeCopySigningInformation (its kSecCodeInfoMainExecutable is the
//     path shown) → SecCodeCheckValidity (running code)
//   → SecStaticCodeCheckValidity with kSecCSCheckAllArchitectures (the file, every slice)
//   → SecCodeCopyDesignatedRequirement → SecRequirementCopyString.
// The designated requirement text is the identity rules key on: it survives moves and updates.
// Not SecCodeCopyPath for the path: for bundled code it names the bundle directory
// (/Applications/Foo.app), while the PID route names the executable (…/Contents/MacOS/Foo); the
// signing information's main executable is the same file proc_pidpath would name.
//
// Fallback (raceable, shown as `insecure`): audit_token_to_pid → proc_pidpath, then the PID's current
// audit token is read again and its pidversion compared with the flow's. A changed pidversion means
// the PID now names another process: the answer is `gone`, never the newcomer's path.
//
// Tested on Linux against a recording fake (test/native-darwin/). NOT YET RUN ON A MAC.
import { basename } from 'node:path';
import type { Attribution, AttributionReason, Signer } from '../../attribution/types.js';
import { AUDIT_TOKEN_BYTES, decodeAuditToken } from '../../protocol/tokens.js';
import {
  ESRCH,
  KERN_SUCCESS,
  PROC_PIDPATHINFO_MAXSIZE,
  Status,
  TASK_AUDIT_TOKEN,
  TASK_AUDIT_TOKEN_COUNT,
  kCFURLPOSIXPathStyle,
  kSecCSCheckAllArchitectures,
  kSecCSDefaultFlags,
  kSecCSDoNotValidateResources,
  kSecCSSigningInformation,
  kSecCodeSignatureAdhoc,
  type AuditTokenValue,
  type CFOut,
  type CFRef,
  type DarwinBindings,
} from './bindings.js';
import { CFScope, createString, dictString, readArray, readString, readValue, withScope, type CFTypeIds } from './cf.js';

/** Requirements that sort signed code into LuLu-like signer classes, compiled once per backend. */
export interface SignerRequirements {
  apple: CFRef | null;
  appStore: CFRef | null;
  developerId: CFRef | null;
  release(): void;
}

// Apple's requirement language (see "Code Signing Requirement Language"). The Developer ID form
// checks Apple's Developer ID intermediate and leaf markers, so Apple Development certificates
// (anchor apple generic, but not for distribution) are not counted as Developer ID.
export const REQUIREMENT_TEXT = {
  apple: 'anchor apple',
  appStore: 'anchor apple generic and certificate leaf [subject.CN] = "Apple Mac OS Application Signing"',
  developerId:
    'anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.6] exists and certificate leaf[field.1.2.840.113635.100.6.1.13] exists',
} as const;

export function createSignerRequirements(b: DarwinBindings): SignerRequirements {
  const scope = new CFScope(b);
  const compile = (text: string): CFRef | null =>
    withScope(b, (temp) => {
      const source = createString(b, temp, text);
      if (source === null) return null;
      const out: CFOut = [null];
      const status = b.SecRequirementCreateWithString(source, kSecCSDefaultFlags, out);
      const requirement = scope.take(out);
      return status === Status.success ? requirement : null;
    });
  return {
    apple: compile(REQUIREMENT_TEXT.apple),
    appStore: compile(REQUIREMENT_TEXT.appStore),
    developerId: compile(REQUIREMENT_TEXT.developerId),
    release: () => scope.close(),
  };
}

export interface ResolveContext {
  b: DarwinBindings;
  ids: CFTypeIds;
  requirements: SignerRequirements;
}

/** What kSecCSSigningInformation returned, decoded. */
export interface SigningDetails {
  identifier?: string;
  teamId?: string;
  /** kSecCodeInfoUnique: the code directory hash, hex. */
  cdhash?: string;
  flags?: number;
  /** Common names of the certificate chain, leaf first. */
  certificates: string[];
  bundleName?: string;
  /** kSecCodeInfoMainExecutable as a POSIX path: the executable file, also inside a bundle. */
  mainExecutable?: string;
}

/** The token as libbsm takes it: audit_token_t by value, eight uint32 in the kernel's order. */
export function auditTokenValue(bytes: Uint8Array): AuditTokenValue | undefined {
  const t = decodeAuditToken(bytes);
  if (!t) return undefined;
  return { val: [t.auid, t.euid, t.egid, t.ruid, t.rgid, t.pid, t.asid, t.pidversion] };
}

export function resolveAuditToken(ctx: ResolveContext, bytes: Uint8Array): Attribution {
  const value = auditTokenValue(bytes);
  if (!value) {
    return {
      trust: 'insecure',
      reason: { call: 'decode token', message: `not a macOS audit token (${bytes.length} bytes, expected ${AUDIT_TOKEN_BYTES})` },
    };
  }
  return withScope(ctx.b, (scope) => {
    const guest = copyGuest(ctx.b, scope, bytes);
    if (guest.status === Status.success && guest.code !== null) return secureRoute(ctx, scope, value, guest.code);
    if (isGone(guest.status)) return goneFrom(ctx.b, value, statusReason('SecCodeCopyGuestWithAttributes', guest.status));
    return pidRoute(ctx.b, scope, value, statusReason('SecCodeCopyGuestWithAttributes', guest.status));
  });
}

/** Builds {kSecGuestAttributeAudit: <token as CFData>} and asks for the guest code object.
 *  The dictionary retains the data (CFType callbacks); both are released with `scope`. */
export function copyGuest(b: DarwinBindings, scope: CFScope, bytes: Uint8Array): { status: number; code: CFRef | null } {
  const data = scope.own(b.CFDataCreate(bytes, bytes.length));
  if (data === null) return { status: Status.errSecCSInvalidAttributeValues, code: null };
  const attributes = scope.own(
    b.CFDictionaryCreate(
      [b.symbols.kSecGuestAttributeAudit],
      [data],
      1,
      b.symbols.kCFTypeDictionaryKeyCallBacks,
      b.symbols.kCFTypeDictionaryValueCallBacks,
    ),
  );
  if (attributes === null) return { status: Status.errSecCSInvalidAttributeValues, code: null };
  const out: CFOut = [null];
  const status = b.SecCodeCopyGuestWithAttributes(null, attributes, kSecCSDefaultFlags, out);
  const code = scope.take(out);
  return { status, code };
}

function secureRoute(ctx: ResolveContext, scope: CFScope, value: AuditTokenValue, code: CFRef): Attribution {
  const { b } = ctx;
  const fail = (call: string, status: number): Attribution =>
    isGone(status) ? goneFrom(b, value, statusReason(call, status)) : pidRoute(b, scope, value, statusReason(call, status));

  const staticOut: CFOut = [null];
  let status = b.SecCodeCopyStaticCode(code, kSecCSDefaultFlags, staticOut);
  const staticCode = scope.take(staticOut);
  if (status !== Status.success || staticCode === null) return fail('SecCodeCopyStaticCode', status);

  // The signing information carries the main executable even for unsigned code (Apple documents it
  // as generic information, returned whatever the flags); it is read once and used again below.
  const details = readSigningDetails(ctx, scope, staticCode);
  let path = details.mainExecutable;
  if (path === undefined) {
    // Only without signing information: SecCodeCopyPath names the bundle directory for bundled code.
    const urlOut: CFOut = [null];
    status = b.SecCodeCopyPath(staticCode, kSecCSDefaultFlags, urlOut);
    const url = scope.take(urlOut);
    if (status !== Status.success || url === null) return fail('SecCodeCopyPath', status);
    path = posixPath(b, scope, url);
    if (path === undefined) return fail('CFURLCopyFileSystemPath', Status.errSecCSStaticCodeNotFound);
  }

  const base: Attribution = {
    trust: 'secure',
    pid: b.audit_token_to_pid(value),
    uid: b.audit_token_to_euid(value),
    name: basename(path),
    path,
  };

  // The running code first (cheap: the kernel tracks page validity), then the file on disk.
  status = b.SecCodeCheckValidity(code, kSecCSDefaultFlags, null);
  if (isGone(status)) return goneFrom(b, value, statusReason('SecCodeCheckValidity', status));
  if (status === Status.errSecCSUnsigned) {
    return { ...base, signer: { kind: 'unsigned', label: 'unsigned' } };
  }
  if (status !== Status.success) {
    return {
      ...base,
      signer: { kind: 'unknown', label: 'invalid signature' },
      reason: { ...statusReason('SecCodeCheckValidity', status), message: `the running code's signature is not valid (OSStatus ${status}); it has no identity to match rules on` },
    };
  }
  // Resources are not re-hashed (an app bundle can take seconds); every architecture of the
  // executable is, which is what CVE-2018-10470 is about.
  status = b.SecStaticCodeCheckValidity(staticCode, kSecCSCheckAllArchitectures | kSecCSDoNotValidateResources, null);
  if (status !== Status.success) {
    return {
      ...base,
      signer: { kind: 'unknown', label: 'signature on disk does not validate' },
      ...(status === Status.errSecCSStaticCodeChanged ? { exeChanged: 'replaced' as const } : {}),
      reason: {
        ...statusReason('SecStaticCodeCheckValidity', status),
        message: `the executable on disk does not validate for every architecture (OSStatus ${status}); it has no identity to match rules on`,
      },
    };
  }

  const signer = classifySigner(ctx, code, details);
  const designated = copyDesignatedRequirement(b, scope, staticCode);
  const attribution: Attribution = { ...base, signer, name: details.bundleName ?? base.name };
  if (typeof designated === 'string') attribution.identity = designated;
  else attribution.reason = { ...statusReason(designated.call, designated.status), message: `the designated requirement could not be read (OSStatus ${designated.status}); rules cannot key on this code` };
  return attribution;
}

export function readSigningDetails(ctx: ResolveContext, scope: CFScope, staticCode: CFRef): SigningDetails {
  const { b, ids } = ctx;
  const out: CFOut = [null];
  const status = b.SecCodeCopySigningInformation(staticCode, kSecCSSigningInformation, out);
  const info = scope.take(out);
  const details: SigningDetails = { certificates: [] };
  if (status !== Status.success || info === null) return details;
  const s = b.symbols;
  const identifier = dictString(b, ids, info, s.kSecCodeInfoIdentifier);
  if (identifier) details.identifier = identifier;
  const teamId = dictString(b, ids, info, s.kSecCodeInfoTeamIdentifier);
  if (teamId) details.teamId = teamId;
  const unique = b.CFDictionaryGetValue(info, s.kSecCodeInfoUnique);
  if (unique !== null) {
    const v = readValue(b, ids, unique);
    if (v.kind === 'data' && v.value.length > 0) details.cdhash = Buffer.from(v.value).toString('hex');
  }
  const flags = b.CFDictionaryGetValue(info, s.kSecCodeInfoFlags);
  if (flags !== null) {
    const v = readValue(b, ids, flags);
    if (v.kind === 'number') details.flags = v.value;
  }
  const certificates = b.CFDictionaryGetValue(info, s.kSecCodeInfoCertificates);
  if (certificates !== null && readValue(b, ids, certificates).kind === 'array') {
    for (const certificate of readArray(b, certificates)) {
      const nameOut: CFOut = [null];
      const st = b.SecCertificateCopyCommonName(certificate, nameOut);
      const name = scope.take(nameOut);
      if (st === Status.success && name !== null) {
        const text = readString(b, name);
        if (text !== undefined) details.certificates.push(text);
      }
    }
  }
  const executable = b.CFDictionaryGetValue(info, s.kSecCodeInfoMainExecutable);
  if (executable !== null) {
    const path = posixPath(b, scope, executable);
    if (path) details.mainExecutable = path;
  }
  const plist = b.CFDictionaryGetValue(info, s.kSecCodeInfoPList);
  if (plist !== null && readValue(b, ids, plist).kind === 'dictionary') {
    const bundleName = dictString(b, ids, plist, s.kCFBundleNameKey);
    if (bundleName) details.bundleName = bundleName;
  }
  return details;
}

/** A borrowed CFURL as a POSIX path (the path string is owned by `scope`). */
function posixPath(b: DarwinBindings, scope: CFScope, url: CFRef): string | undefined {
  const ref = scope.own(b.CFURLCopyFileSystemPath(url, kCFURLPOSIXPathStyle));
  return ref === null ? undefined : readString(b, ref);
}

function classifySigner(ctx: ResolveContext, code: CFRef, details: SigningDetails): Signer {
  const { b, requirements } = ctx;
  const satisfies = (req: CFRef | null): boolean => req !== null && b.SecCodeCheckValidity(code, kSecCSDefaultFlags, req) === Status.success;
  const leaf = details.certificates[0];
  const team = details.teamId;
  const withTeam = (s: Signer): Signer => (team ? { ...s, teamId: team } : s);
  if (satisfies(requirements.apple)) return { kind: 'apple', label: details.identifier ? `Apple (${details.identifier})` : 'Apple' };
  if (satisfies(requirements.appStore)) return withTeam({ kind: 'app-store', label: team ? `App Store (${team})` : 'App Store' });
  if (satisfies(requirements.developerId)) {
    return withTeam({ kind: 'developer-id', label: leaf ?? (team ? `Developer ID (${team})` : 'Developer ID') });
  }
  if (details.flags !== undefined && (details.flags & kSecCodeSignatureAdhoc) !== 0) {
    return { kind: 'ad-hoc', label: 'ad hoc (no signing identity)' };
  }
  return withTeam({ kind: 'unknown', label: leaf ? `signed by "${leaf}", not a distribution certificate` : 'signed by an unrecognised certificate' });
}

function copyDesignatedRequirement(
  b: DarwinBindings,
  scope: CFScope,
  staticCode: CFRef,
): string | { call: string; status: number } {
  const reqOut: CFOut = [null];
  let status = b.SecCodeCopyDesignatedRequirement(staticCode, kSecCSDefaultFlags, reqOut);
  const requirement = scope.take(reqOut);
  if (status !== Status.success || requirement === null) return { call: 'SecCodeCopyDesignatedRequirement', status };
  const textOut: CFOut = [null];
  status = b.SecRequirementCopyString(requirement, kSecCSDefaultFlags, textOut);
  const text = scope.take(textOut);
  const value = status === Status.success && text !== null ? readString(b, text) : undefined;
  return value ?? { call: 'SecRequirementCopyString', status };
}

/** The raceable route by PID, confirmed afterwards against the token's pidversion. */
function pidRoute(b: DarwinBindings, scope: CFScope, value: AuditTokenValue, why: AttributionReason): Attribution {
  const pid = b.audit_token_to_pid(value);
  const uid = b.audit_token_to_euid(value);
  const pidversion = b.audit_token_to_pidversion(value);

  const buffer = Buffer.alloc(PROC_PIDPATHINFO_MAXSIZE);
  const length = b.proc_pidpath(pid, buffer, PROC_PIDPATHINFO_MAXSIZE);
  if (length <= 0) {
    const errno = b.errno();
    if (errno === ESRCH) {
      return { trust: 'gone', pid, reason: { call: 'proc_pidpath', errno: 'ESRCH', message: `process ${pid} exited before it could be identified` } };
    }
    return { trust: 'insecure', pid, uid, reason: { ...why, message: `${why.message}; proc_pidpath failed too (errno ${errno}), so there is no path` } };
  }
  const end = buffer.indexOf(0);
  const path = buffer.toString('utf8', 0, Math.min(length, end === -1 ? length : end));

  const current = currentPidversion(b, scope, pid, pidversion);
  if (current.kind === 'changed') {
    return {
      trust: 'gone',
      pid,
      reason: {
        call: 'audit_token_to_pidversion',
        message: `process ${pid} exited and its PID was reused by another process (pidversion ${pidversion} → ${current.pidversion}); the new process is not shown`,
      },
    };
  }
  const confirmed = current.kind === 'same'
    ? 'found by PID (raceable: another process could have taken the PID while it was read)'
    : `found by PID, and the PID could not be re-checked (${current.message}): it may already name another process`;
  return { trust: 'insecure', pid, uid, name: basename(path), path, reason: { ...why, message: `${why.message}; ${confirmed}` } };
}

type PidversionCheck =
  | { kind: 'same' }
  | { kind: 'changed'; pidversion: number }
  | { kind: 'unknown'; message: string };

/** Reads the PID's current audit token and compares its pid and pidversion with the flow's. */
function currentPidversion(b: DarwinBindings, scope: CFScope, pid: number, pidversion: number): PidversionCheck {
  const now = readAuditTokenOfPid(b, scope, pid);
  if (typeof now === 'string') return { kind: 'unknown', message: now };
  const value = auditTokenValue(now);
  if (!value) return { kind: 'unknown', message: 'task_info returned no audit token' };
  const nowVersion = b.audit_token_to_pidversion(value);
  if (b.audit_token_to_pid(value) !== pid || nowVersion !== pidversion) return { kind: 'changed', pidversion: nowVersion };
  return { kind: 'same' };
}

/** The audit token of whatever process has `pid` now (task_name_for_pid + task_info TASK_AUDIT_TOKEN),
 *  or why it could not be read. The name port is deallocated when `scope` closes. */
export function readAuditTokenOfPid(b: DarwinBindings, scope: CFScope, pid: number): Uint8Array | string {
  const port: [number] = [0];
  let kr = b.task_name_for_pid(pid, port);
  if (kr !== KERN_SUCCESS) return `task_name_for_pid returned ${kr}`;
  const name = port[0];
  scope.defer(() => void b.mach_port_deallocate(name));
  const info = Buffer.alloc(TASK_AUDIT_TOKEN_COUNT * 4);
  const count: [number] = [TASK_AUDIT_TOKEN_COUNT];
  kr = b.task_info(name, TASK_AUDIT_TOKEN, info, count);
  if (kr !== KERN_SUCCESS || count[0] !== TASK_AUDIT_TOKEN_COUNT) return `task_info returned ${kr}`;
  return new Uint8Array(info);
}

/** Convenience for tools and tests: the current audit token of a PID, or undefined. */
export function auditTokenOfPid(b: DarwinBindings, pid: number): Uint8Array | undefined {
  return withScope(b, (scope) => {
    const token = readAuditTokenOfPid(b, scope, pid);
    return typeof token === 'string' ? undefined : token;
  });
}

function goneFrom(b: DarwinBindings, value: AuditTokenValue, reason: AttributionReason): Attribution {
  return { trust: 'gone', pid: b.audit_token_to_pid(value), reason: { ...reason, message: `the process exited before it could be identified (${reason.message})` } };
}

/** The process instance no longer exists. errSecCSNoSuchCode means the same from every call: the
 *  host here is the kernel (host NULL) and the guest is named by an audit token, which names one
 *  instance and is never reused, so "no guest with these attributes" can only mean that instance
 *  exited or exec'd (its pidversion moved on). Sending it to the PID route instead would look up
 *  whatever holds the PID now, which the pidversion re-check would reject anyway, after a raceable
 *  read. */
function isGone(status: number): boolean {
  return status === Status.posixESRCH || status === Status.errSecCSNoSuchCode;
}

/** A failed call's status in words, with the POSIX name where Security.framework wraps an errno. */
export function statusReason(call: string, status: number): AttributionReason {
  if (status === Status.posixEPERM) {
    return {
      call,
      errno: 'EPERM',
      code: status,
      message: 'macOS refused the code-signing lookup (EPERM; it happens for system daemons in /usr/libexec when asked from a sandbox)',
    };
  }
  if (status === Status.posixESRCH) return { call, errno: 'ESRCH', code: status, message: 'no such process (ESRCH)' };
  if (status > 100000 && status < 100200) {
    return { call, errno: `errno ${status - 100000}`, code: status, message: `${call} failed with POSIX error ${status - 100000}` };
  }
  return { call, code: status, message: `${call} failed (OSStatus ${status})` };
}
