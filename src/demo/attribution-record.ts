// Validation of the attributions a scenario ships (`attribution` lines). A recording holds final
// answers only: `pending` is not a result a native layer returns.
import type { Attribution, SignerKind } from '../attribution/types.js';
import { checkCount, checkOneOf, checkString, firstError, isObject, unknownKey } from './fields.js';

const TRUSTS = ['secure', 'insecure', 'gone'] as const;
const SIGNER_KINDS: readonly SignerKind[] = [
  'package', 'modified', 'unpackaged', 'apple', 'app-store', 'developer-id', 'ad-hoc', 'unsigned', 'unknown',
];
const FIELDS = [
  'trust', 'pid', 'uid', 'user', 'name', 'path', 'cmdline', 'identity', 'sha256', 'signer', 'exeChanged', 'reason', 'parents',
];

/** The attribution, or a sentence saying what is wrong with it. */
export function readAttribution(value: unknown): Attribution | string {
  if (!isObject(value)) return 'attribution must be an object';
  const problem = firstError(
    unknownKey(value, FIELDS, 'attribution'),
    checkOneOf(value.trust, 'attribution.trust', TRUSTS),
    checkCount(value.pid, 'attribution.pid', true),
    checkCount(value.uid, 'attribution.uid', true),
    checkString(value.user, 'attribution.user', true),
    checkString(value.name, 'attribution.name', true),
    checkString(value.path, 'attribution.path', true),
    checkString(value.identity, 'attribution.identity', true),
    value.sha256 === undefined || (typeof value.sha256 === 'string' && /^[0-9a-f]{64}$/.test(value.sha256))
      ? undefined
      : 'attribution.sha256 must be 64 lowercase hex digits',
    value.cmdline === undefined || (Array.isArray(value.cmdline) && value.cmdline.every((arg) => typeof arg === 'string'))
      ? undefined
      : 'attribution.cmdline must be an array of strings',
    checkOneOf(value.exeChanged, 'attribution.exeChanged', ['deleted', 'replaced'], true),
    signerProblem(value.signer),
    reasonProblem(value.reason),
    parentsProblem(value.parents),
  );
  if (problem) return problem;
  if (value.trust !== 'secure' && value.reason === undefined) {
    return `an ${value.trust === 'gone' ? '"gone"' : '"insecure"'} attribution needs a reason (which call failed, and why)`;
  }
  return value as unknown as Attribution;
}

function signerProblem(signer: unknown): string | undefined {
  if (signer === undefined) return undefined;
  if (!isObject(signer)) return 'attribution.signer must be an object';
  return firstError(
    unknownKey(signer, ['kind', 'label', 'package', 'teamId'], 'attribution.signer'),
    checkOneOf(signer.kind, 'attribution.signer.kind', SIGNER_KINDS),
    checkString(signer.label, 'attribution.signer.label'),
    checkString(signer.package, 'attribution.signer.package', true),
    checkString(signer.teamId, 'attribution.signer.teamId', true),
  );
}

function reasonProblem(reason: unknown): string | undefined {
  if (reason === undefined) return undefined;
  if (!isObject(reason)) return 'attribution.reason must be an object';
  return firstError(
    unknownKey(reason, ['call', 'errno', 'code', 'message'], 'attribution.reason'),
    checkString(reason.call, 'attribution.reason.call'),
    checkString(reason.errno, 'attribution.reason.errno', true),
    reason.code === undefined || Number.isSafeInteger(reason.code) ? undefined : 'attribution.reason.code must be a whole number',
    checkString(reason.message, 'attribution.reason.message'),
  );
}

function parentsProblem(parents: unknown): string | undefined {
  if (parents === undefined) return undefined;
  if (!Array.isArray(parents)) return 'attribution.parents must be an array';
  for (const [i, parent] of parents.entries()) {
    const where = `attribution.parents[${i}]`;
    if (!isObject(parent)) return `${where} must be an object`;
    const problem = firstError(
      unknownKey(parent, ['pid', 'name', 'path'], where),
      checkCount(parent.pid, `${where}.pid`),
      checkString(parent.name, `${where}.name`),
      checkString(parent.path, `${where}.path`, true),
    );
    if (problem) return problem;
  }
  return undefined;
}
