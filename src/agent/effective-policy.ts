// The policy a running agent applies to flows no rule matches, and where each part comes from: its
// own flags and the rules file's policy combine (the stricter default action wins), so the file alone
// does not say what happens. Sent in hello.mode for `flowtop rules policy --socket` and the TUI.
import type { Action, BlockMode, HelloMessage } from '../protocol/messages.js';
import type { Policy } from '../rules/policy.js';

export type EffectivePolicyMode = Pick<NonNullable<HelloMessage['mode']>, 'defaultAction' | 'blockMode' | 'blockUnpackaged' | 'allowPackaged' | 'policyFrom'>;

/** The action when nobody decides: the stricter of `--default` and the rules file's policy. */
export function defaultActionOf(flags: { defaultAction: Action }, file: Pick<Policy, 'defaultAction'>): Action {
  return flags.defaultAction === 'block' || file.defaultAction === 'block' ? 'block' : 'allow';
}

export function effectivePolicy(flags: { defaultAction: Action; blockMode: BlockMode }, file: Policy): EffectivePolicyMode {
  const defaultAction = defaultActionOf(flags, file);
  const defaultFrom = flags.defaultAction === file.defaultAction
    ? `both --default and the rules file say ${defaultAction}`
    : flags.defaultAction === 'block'
      ? `--default block (stricter than the rules file's allow)`
      : `the rules file's block (stricter than --default allow)`;
  const blockModeFrom = file.blockMode === flags.blockMode
    ? `--block-mode ${flags.blockMode}; the rules file agrees`
    : `--block-mode ${flags.blockMode}, for blocks at the deadline and by people; the block-unpackaged switch uses the rules file's ${file.blockMode}`;
  return {
    defaultAction,
    blockMode: flags.blockMode,
    blockUnpackaged: file.blockUnpackaged,
    allowPackaged: file.allowPackaged,
    policyFrom: {
      defaultAction: defaultFrom,
      blockMode: blockModeFrom,
      blockUnpackaged: 'the rules file',
      allowPackaged: 'the rules file',
    },
  };
}
