// A catch names the failure it expects and lets every other one through: a system error it did not
// expect (EMFILE, EIO) or a bug (a TypeError) must not pass for "the file was gone". Node's fs errors
// and the native layer's (BpfError, NetlinkError) carry the errno's name in `code`.

/** The errno name of a caught system error ("ENOENT"), or undefined when it is not one. */
export function errnoCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** Returns when `error` is a system error named in `codes`; rethrows anything else. */
export function expectErrno(error: unknown, codes: readonly string[]): void {
  const code = errnoCode(error);
  if (code === undefined || !codes.includes(code)) throw error;
}

/** Returns when `error` is any system error (an errno from the kernel: the outside world said no);
 *  rethrows anything else, which is a bug. */
export function expectSystemError(error: unknown): void {
  if (errnoCode(error) === undefined) throw error;
}

/** A process that has exited (or a file of it that has closed) since it was listed. */
export const GONE: readonly string[] = ['ENOENT', 'ESRCH'];
/** …or one we may not read (another user's process without privilege). */
export const GONE_OR_DENIED: readonly string[] = ['ENOENT', 'ESRCH', 'EACCES', 'EPERM'];
