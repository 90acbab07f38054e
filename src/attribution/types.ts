// What flowtop knows about the process behind a token, and the one interface every platform's
// native layer implements. Nothing here does I/O.

export type Trust = 'secure' | 'insecure' | 'gone' | 'pending';

/** Who vouches for the code. Linux: package / modified / unpackaged. macOS: LuLu-style signer classes. */
export type SignerKind =
  | 'package' // Linux: file matches its package's recorded checksum (the counterpart of platform signing)
  | 'modified' // Linux: file differs from its package's checksum
  | 'unpackaged' // Linux: no package vouches for it (the counterpart of unsigned)
  | 'apple' // macOS platform binary
  | 'app-store'
  | 'developer-id'
  | 'ad-hoc'
  | 'unsigned'
  | 'unknown';

export interface Signer {
  kind: SignerKind;
  /** e.g. "package coreutils", "Developer ID: Example Corp (TEAMID)". */
  label: string;
  package?: string;
  teamId?: string;
}

export interface AttributionReason {
  /** The call that failed, e.g. "pidfd_open", "open /proc/PID/exe", "SecCodeCopyGuestWithAttributes". */
  call: string;
  /** Symbolic errno, e.g. "EACCES", "ESRCH", "EPERM". */
  errno?: string;
  /** The OS's numeric code, e.g. 100001 for a Security.framework EPERM. */
  code?: number;
  /** Plain words for a person. */
  message: string;
}

export interface ParentProcess {
  pid: number;
  name: string;
  path?: string;
}

export interface Attribution {
  trust: Trust;
  pid?: number;
  uid?: number;
  user?: string;
  name?: string;
  path?: string;
  cmdline?: string[];
  /** The stable code identity rules key on: "sha256:<hex>", "package:<name>:<path>", or a macOS DR. */
  identity?: string;
  sha256?: string;
  signer?: Signer;
  /** Linux: dev:inode:size:mtime:ctime (ns) of the executable file that was hashed — the key the
   *  identity is valid for (any write to the file changes it). */
  exeKey?: string;
  /** The executable was deleted or replaced on disk after the process started. */
  exeChanged?: 'deleted' | 'replaced';
  reason?: AttributionReason;
  parents?: ParentProcess[];
}

/** Resolves tokens in batches. One implementation per platform (linux, darwin) plus replay for the demo. */
export interface AttributionBackend {
  readonly kind: 'linux' | 'darwin' | 'replay';
  /** Resolve each token; the result array is parallel to the input. Never rejects for one bad token:
   *  a token that cannot be resolved yields `insecure` or `gone` with a reason. */
  resolve(tokens: readonly Uint8Array[]): Promise<Attribution[]>;
  close?(): void;
}
