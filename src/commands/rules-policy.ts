// `flowtop rules policy`: the rules file's policy switches, and what a running agent really applies.
import { UserError } from '../errors.js';
import { type Policy } from '../rules/policy.js';
import { RemoteRules } from '../rules/remote.js';
import { DEFAULT_RULES_PATH, RuleStore } from '../rules/store.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
import { usageError, type RulesIo, type Values } from './rules-common.js';

// ---- policy --------------------------------------------------------------------------------------

function onOff(flag: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === 'false' || value === 'no') return false;
  throw usageError(`--${flag} ${value}: expected on or off`);
}

/** Shows or sets the policy switches. They live in the rules file, which a running agent owns (it
 *  would write its own copy over a change made beside it), so setting them needs the agent stopped. */
export async function policyCommand(values: Values, io: RulesIo): Promise<number> {
  const next: Partial<Policy> = {};
  if (values.default !== undefined) {
    if (values.default !== 'allow' && values.default !== 'block') throw usageError(`--default ${values.default}: expected allow or block`);
    next.defaultAction = values.default;
  }
  if (values['block-mode'] !== undefined) {
    if (values['block-mode'] !== 'drop' && values['block-mode'] !== 'reject') throw usageError(`--block-mode ${values['block-mode']}: expected drop or reject`);
    next.blockMode = values['block-mode'];
  }
  const blockUnpackaged = onOff('block-unpackaged', values['block-unpackaged']);
  if (blockUnpackaged !== undefined) next.blockUnpackaged = blockUnpackaged;
  const allowPackaged = onOff('allow-packaged', values['allow-packaged']);
  if (allowPackaged !== undefined) next.allowPackaged = allowPackaged;

  const path = values.rules ?? DEFAULT_RULES_PATH;
  const changing = Object.keys(next).length > 0;
  if (!changing && values.rules === undefined) {
    const shown = await showAgentPolicy(values, io);
    if (shown !== undefined) return shown;
  }
  // As for the other commands, --rules names a file to edit directly; without it, ask the agent first.
  if (changing && values.rules === undefined) {
    const sockets = explicitSocketPaths(values.socket ?? [], io.env);
    const outcome = await RemoteRules.connect(sockets[0] ?? defaultSocketPath());
    if (outcome.kind === 'connected') {
      outcome.client.close();
      throw new UserError(`an agent is running (${outcome.client.path}); it owns the rules file while it runs`, 'stop the agent, change the policy, then start it again');
    }
  }
  const store = await RuleStore.open(path);
  try {
    if (changing) await store.setPolicy({ ...store.policy(), ...next });
    const policy = store.policy();
    if (values.json) {
      io.stdout(`${JSON.stringify(policy, null, 2)}\n`);
      return 0;
    }
    io.stdout(`${changing ? 'policy set' : 'policy'} (${path}):\n` +
      `  default action     ${policy.defaultAction}   when no rule matches and nobody answers in time\n` +
      `  block mode         ${policy.blockMode}\n` +
      `  block unpackaged   ${policy.blockUnpackaged ? 'on ' : 'off'}     code no package or signature vouches for, and code whose identity cannot be verified\n` +
      `  allow packaged     ${policy.allowPackaged ? 'on ' : 'off'}     code a package verifies (Linux) or Apple signs (macOS)\n`);
    return 0;
  } finally {
    await store.close();
  }
}

/** The policy a running agent applies (its flags and its rules file combined), as its hello says,
 *  with where each part comes from. undefined when no agent answers on the default socket (the file
 *  is shown instead); an explicit --socket with nothing there is an error. */
async function showAgentPolicy(values: Values, io: RulesIo): Promise<number | undefined> {
  const sockets = explicitSocketPaths(values.socket ?? [], io.env);
  if (sockets.length > 1) throw usageError('give one --socket for rules');
  const explicit = (values.socket ?? []).length > 0;
  const path = sockets[0] ?? defaultSocketPath();
  const outcome = await RemoteRules.connect(path);
  if (outcome.kind === 'absent') {
    if (!explicit) return undefined;
    throw new UserError(`cannot ask ${path} for its policy: no agent listens there (${outcome.why})`, 'start the agent (`sudo flowtop agent`), or pass --rules PATH to read a rules file');
  }
  const hello = outcome.kind === 'connected' ? outcome.client.hello : outcome.hello;
  if (outcome.kind === 'connected') outcome.client.close();
  const mode = hello.mode ?? {};
  if (mode.defaultAction === undefined || mode.blockMode === undefined || mode.blockUnpackaged === undefined || mode.allowPackaged === undefined) {
    if (!explicit) return undefined;
    throw new UserError(`${hello.extension.name} at ${path} does not say which policy it applies`, 'pass --rules PATH to read a rules file');
  }
  const from = mode.policyFrom ?? {};
  const policy: Policy = { defaultAction: mode.defaultAction, blockMode: mode.blockMode, blockUnpackaged: mode.blockUnpackaged, allowPackaged: mode.allowPackaged };
  if (values.json) {
    io.stdout(`${JSON.stringify({ ...policy, from, appliedBy: path }, null, 2)}\n`);
    return 0;
  }
  const onOffText = (on: boolean): string => (on ? 'on ' : 'off');
  io.stdout(`policy applied by ${hello.extension.name} at ${path}:\n` +
    `  default action     ${policy.defaultAction.padEnd(6)}  ${from.defaultAction ?? ''}\n` +
    `  block mode         ${policy.blockMode.padEnd(6)}  ${from.blockMode ?? ''}\n` +
    `  block unpackaged   ${onOffText(policy.blockUnpackaged).padEnd(6)}  ${from.blockUnpackaged ?? ''}\n` +
    `  allow packaged     ${onOffText(policy.allowPackaged).padEnd(6)}  ${from.allowPackaged ?? ''}\n` +
    `(the agent reads its rules file when it starts: to change the file's part, stop it, run \`flowtop rules policy --rules FILE ...\`, start it)\n`);
  return 0;
}
