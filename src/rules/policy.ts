// Policy switches: what happens to a flow no rule matches (docs/rules.md, "Policy"). A pure decision
// from the attribution and the switches, with the reason in words.
import type { Attribution, SignerKind } from '../attribution/types.js';
import type { Action, BlockMode } from '../protocol/messages.js';
import type { Checked } from './schema.js';

export interface Policy {
  /** The answer when nothing else decides (no rule, no switch, nobody answered in time). */
  defaultAction: Action;
  /** How blocks decided by policy are enforced: drop silently or reject (TCP reset / ICMP). */
  blockMode: BlockMode;
  /** Block code no package (Linux) or signature (macOS) vouches for, and code whose identity could
   *  not be verified — the seed's "simply block all unsigned code". */
  blockUnpackaged: boolean;
  /** Allow code a package verifies (Linux) or the platform signs (macOS) without asking. */
  allowPackaged: boolean;
}

export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze({
  defaultAction: 'allow',
  blockMode: 'drop',
  blockUnpackaged: false,
  allowPackaged: false,
});

export interface PolicyDecision {
  action: Action;
  blockMode?: BlockMode;
  /** Which switch decided; 'default' means the default action. */
  by: 'allowPackaged' | 'blockUnpackaged' | 'default';
  /** True when a switch decided: the flow need not wait for a person. False for the default action,
   *  which applies when nobody answers in time. */
  immediate: boolean;
  reason: string;
}

/** Signers that vouch for code as part of the system. */
const SYSTEM_SIGNERS: ReadonlySet<SignerKind> = new Set<SignerKind>(['package', 'apple']);
/** Signers that say nothing trustworthy about the code. */
const UNVOUCHED_SIGNERS: ReadonlySet<SignerKind> = new Set<SignerKind>(['unpackaged', 'modified', 'unsigned', 'ad-hoc']);

export function decideByPolicy(attribution: Attribution | undefined, policy: Policy): PolicyDecision {
  const block = (by: PolicyDecision['by'], immediate: boolean, reason: string): PolicyDecision =>
    ({ action: 'block', blockMode: policy.blockMode, by, immediate, reason });
  const who = attribution?.path ?? attribution?.name ?? 'the process';

  if (attribution?.trust === 'secure') {
    const signer = attribution.signer;
    if (policy.allowPackaged && signer && SYSTEM_SIGNERS.has(signer.kind)) {
      return { action: 'allow', by: 'allowPackaged', immediate: true, reason: `${who} is system code (${signer.label}); allowed by the allow-packaged switch` };
    }
    if (policy.blockUnpackaged && (!signer || UNVOUCHED_SIGNERS.has(signer.kind))) {
      const what = !signer ? 'no signer is known'
        : signer.kind === 'modified' ? 'it differs from its package\'s checksum'
        : signer.kind === 'unpackaged' ? 'no package vouches for it'
        : `it is ${signer.kind === 'ad-hoc' ? 'ad-hoc signed' : 'unsigned'}`;
      return block('blockUnpackaged', true, `${who}: ${what}; blocked by the block-unpackaged switch`);
    }
  } else if (policy.blockUnpackaged && attribution?.trust === 'pending') {
    // Not immediate: the caller should wait for the attribution; block if it never comes.
    return block('blockUnpackaged', false, `${who}: its identity is not known yet; blocked by the block-unpackaged switch unless it is verified in time`);
  } else if (policy.blockUnpackaged) {
    const why = !attribution ? 'no process was found for the flow'
      : `its identity could not be verified (${attribution.trust}${attribution.reason ? `: ${attribution.reason.message}` : ''})`;
    return block('blockUnpackaged', true, `${who}: ${why}; blocked by the block-unpackaged switch`);
  }
  const reason = 'no rule matched; the default action applies';
  return policy.defaultAction === 'block' ? block('default', false, reason) : { action: 'allow', by: 'default', immediate: false, reason };
}

/** Checks the `policy` object of a rules document; missing fields take their defaults. */
export function parsePolicy(value: unknown, where = 'policy'): Checked<Policy> {
  if (value === undefined) return { ok: true, value: { ...DEFAULT_POLICY } };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problems: [`${where}: must be an object, got ${JSON.stringify(value)}`] };
  }
  const o = value as Record<string, unknown>;
  const problems: string[] = [];
  const out: Policy = { ...DEFAULT_POLICY };
  for (const key of Object.keys(o)) {
    const v = o[key];
    switch (key) {
      case 'defaultAction':
        if (v === 'allow' || v === 'block') out.defaultAction = v;
        else problems.push(`${where}.defaultAction: must be "allow" or "block", got ${JSON.stringify(v)}`);
        break;
      case 'blockMode':
        if (v === 'drop' || v === 'reject') out.blockMode = v;
        else problems.push(`${where}.blockMode: must be "drop" or "reject", got ${JSON.stringify(v)}`);
        break;
      case 'blockUnpackaged':
      case 'allowPackaged':
        if (typeof v === 'boolean') out[key] = v;
        else problems.push(`${where}.${key}: must be true or false, got ${JSON.stringify(v)}`);
        break;
      default:
        problems.push(`${where}.${key}: is not a known switch (known: defaultAction, blockMode, blockUnpackaged, allowPackaged)`);
    }
  }
  return problems.length ? { ok: false, problems } : { ok: true, value: out };
}
