// Plain words for how far an attribution can be trusted, and why.
import type { Attribution } from '../attribution/types.js';

export const TRUST_WORD = {
  secure: 'secure: identity verified for exactly this process instance',
  insecure: 'NOT SECURE',
  gone: 'gone: the process exited before it could be identified',
  pending: 'pending: lookup in progress',
} as const;

/** e.g. "secure lookup failed with EPERM (100001); name comes from the PID only and can be spoofed by PID reuse". */
export function trustReason(a: Attribution): string | undefined {
  if (a.trust === 'secure' || a.trust === 'pending') return undefined;
  const parts: string[] = [];
  const r = a.reason;
  if (r) {
    if (r.errno || r.code !== undefined) {
      const code = r.code !== undefined ? `${r.errno ? ' ' : ''}(${r.code})` : '';
      parts.push(`${r.call} failed with ${r.errno ?? ''}${code}`);
    }
    if (r.message) parts.push(r.message);
  }
  if (a.trust === 'insecure' && !parts.some((p) => /PID/.test(p)) && (a.name || a.path)) {
    parts.push('name comes from the PID only and can be spoofed by PID reuse');
  }
  if (a.trust === 'gone' && parts.length === 0) parts.push('the process exited before it could be identified');
  if (a.exeChanged) parts.push(`the executable was ${a.exeChanged} on disk after the process started`);
  return parts.length > 0 ? parts.join('; ') : 'no reason given by the attribution layer';
}
