// The decision prompt (A / B): what it offers for one flow, and the message a choice sends. Pure:
// the Root keeps the choice in the UI state and carries the message out. Only what applies is
// offered; everything else is shown with the reason it is not.
import type { Action, ClientMessage, RememberScope, RuleSpec } from '../protocol/messages.js';
import { describeAction, describeEndpoint, describeRule } from '../rules/model.js';
import { registrableDomain, rememberedRule, subjectOf, type RememberChoice } from '../rules/remember.js';
import { displayName, flowPhase, remoteLabel } from '../state/derive.js';
import type { FlowRow, SourceInfo } from '../state/types.js';
import { cannotAct, ruleIdentity, type Decision } from './decide.js';

export const PROMPT_DURATIONS = ['once', 'process', 'hour', 'session', 'always'] as const;
export type PromptDuration = (typeof PROMPT_DURATIONS)[number];
export const PROMPT_SCOPES = ['process', 'host', 'domain', 'port', 'endpoint'] as const satisfies readonly RememberScope[];

export const HOUR_MS = 3_600_000;

export interface PromptOption<T extends string> {
  id: T;
  /** The key that picks it. */
  key: string;
  label: string;
  /** Why it cannot be chosen for this flow, in words; absent when it can. */
  unavailable?: string;
}

export interface PromptOptions {
  durations: PromptOption<PromptDuration>[];
  scopes: PromptOption<RememberScope>[];
}

/** "curl → example.com:443" */
export function flowLabel(row: FlowRow): string {
  return `${displayName(row)} → ${remoteLabel(row)}:${row.flow.remote.port}`;
}

/** What the prompt can offer for this flow of this source. */
export function promptOptions(row: FlowRow, info: SourceInfo | undefined): PromptOptions {
  const caps = info?.hello?.capabilities ?? [];
  const waiting = flowPhase(row) === 'pending';
  const name = displayName(row);
  const verified = ruleIdentity(row.attribution) !== undefined;
  const unverified = `${name} has no verified code identity (${row.attribution.trust}), so a rule for it could match another program`;
  const viaRules = waiting ? undefined : caps.includes('rules') ? undefined : `${info?.hello?.extension.name ?? 'the extension'} does not keep rules`;
  const durations: PromptOption<PromptDuration>[] = [
    { id: 'once', key: '1', label: 'once', ...(waiting ? {} : { unavailable: 'the flow is not waiting: once has nothing to decide' }) },
    { id: 'process', key: '2', label: 'until it exits', ...(viaRules ? { unavailable: viaRules } : row.flow.token ? {} : { unavailable: 'the flow has no process token to remember' }) },
    { id: 'hour', key: '3', label: 'for 1 h', ...(viaRules ? { unavailable: viaRules } : verified ? {} : { unavailable: unverified }) },
    {
      id: 'session',
      key: '4',
      label: 'until restart',
      ...(!caps.includes('verdict-durations')
        ? { unavailable: `${info?.hello?.extension.name ?? 'the extension'} cannot keep a rule until it restarts` }
        : verified ? {} : { unavailable: unverified }),
    },
    { id: 'always', key: '5', label: 'always', ...(viaRules ? { unavailable: viaRules } : verified ? {} : { unavailable: unverified }) },
  ];
  // A waiting flow's rule is made by the extension from the verdict: new durations need it to know them.
  if (waiting && !caps.includes('verdict-durations')) durations[2]!.unavailable ??= `${info?.hello?.extension.name ?? 'the extension'} cannot make a rule that expires`;
  const host = row.flow.remoteHost?.name;
  const domain = host ? registrableDomain(host) : undefined;
  const newScope = waiting && !caps.includes('verdict-scopes') ? `${info?.hello?.extension.name ?? 'the extension'} only remembers a process or a process + endpoint` : undefined;
  const scopes: PromptOption<RememberScope>[] = [
    { id: 'process', key: 'p', label: 'any remote' },
    { id: 'host', key: 'h', label: `host ${remoteLabel(row)}`, ...(newScope ? { unavailable: newScope } : {}) },
    {
      id: 'domain',
      key: 'd',
      label: domain ? `domain ${domain}` : 'domain',
      ...(newScope
        ? { unavailable: newScope }
        : !host
          ? { unavailable: 'no host name is known for this flow, so it has no domain' }
          : !domain
            ? { unavailable: `${host} has no registrable domain` }
            : {}),
    },
    { id: 'port', key: 'o', label: `port ${row.flow.remote.port}/${row.flow.protocol}`, ...(newScope ? { unavailable: newScope } : {}) },
    { id: 'endpoint', key: 'e', label: `endpoint ${remoteLabel(row)}:${row.flow.remote.port}` },
  ];
  return { durations, scopes };
}

/** The duration the prompt starts on: the longest that applies of always / until it exits / once. */
export function initialDuration(options: PromptOptions): PromptDuration {
  for (const id of ['always', 'process', 'once'] as const) if (!options.durations.find((d) => d.id === id)!.unavailable) return id;
  return 'always';
}

function choiceOf(action: Action, duration: Exclude<PromptDuration, 'once'>, scope: RememberScope): RememberChoice {
  return {
    action,
    remember: duration === 'process' ? 'process' : 'always',
    scope,
    ...(duration === 'hour' ? { forMs: HOUR_MS } : {}),
    ...(duration === 'session' ? { session: true } : {}),
  };
}

/** The rule a choice leaves, as the extension will make it (a preview), or why there is none. */
export function previewRule(row: FlowRow, action: Action, duration: PromptDuration, scope: RememberScope, now: number): RuleSpec | string | undefined {
  if (duration === 'once') return undefined;
  return rememberedRule(choiceOf(action, duration, scope), subjectOf(row.flow, ruleIdentity(row.attribution)), now);
}

/** The preview in words. A token rule names no code identity: it is about this instance of `name`. */
export function describePreview(preview: RuleSpec | string | undefined, now: number, name: string): string {
  if (preview === undefined) return 'decides this flow only; nothing is remembered';
  if (typeof preview === 'string') return `no rule: ${preview}`;
  if (preview.identity || preview.duration.kind !== 'process') return `rule: ${describeRule(preview, now)}`;
  const parts = [describeAction(preview), `${name} (this process instance)`, '→', describeEndpoint(preview.endpoint), preview.protocol, preview.direction].filter(Boolean);
  return `rule: ${parts.join(' ')}, until it exits`;
}

/** What confirming the prompt sends: a verdict for a waiting flow (the extension makes the rule
 *  while it still holds the flow), a rule-add for one that is not waiting any more. */
export function decideWithPrompt(row: FlowRow, info: SourceInfo | undefined, action: Action, duration: PromptDuration, scope: RememberScope, now: number): Decision {
  const refused = cannotAct(info);
  if (refused) return { refuse: refused };
  const options = promptOptions(row, info);
  const d = options.durations.find((o) => o.id === duration)!;
  if (d.unavailable) return { refuse: `${d.label}: ${d.unavailable}` };
  const label = flowLabel(row);
  if (duration === 'once') {
    if (flowPhase(row) !== 'pending') return { refuse: `${label} is not waiting for a verdict any more; nothing was sent` };
    return { send: { type: 'verdict', id: row.flow.id, action, remember: 'once' }, note: `${action} sent for ${label}` };
  }
  const s = options.scopes.find((o) => o.id === scope)!;
  if (s.unavailable) return { refuse: `${s.label}: ${s.unavailable}` };
  const preview = previewRule(row, action, duration, scope, now);
  if (typeof preview === 'string') return { refuse: `no rule made: ${preview}` };
  const what = `${action} ${displayName(row)}${scope === 'process' ? '' : ` to ${s.label}`}, ${PROMPT_DURATIONS_LABEL[duration]}`;
  if (flowPhase(row) === 'pending') {
    const choice = choiceOf(action, duration, scope);
    const send: ClientMessage = {
      type: 'verdict',
      id: row.flow.id,
      action,
      remember: choice.remember,
      scope,
      ...(choice.forMs !== undefined ? { forMs: choice.forMs } : {}),
      ...(choice.session ? { session: true } : {}),
    };
    return { send, note: `${what}: sent` };
  }
  return { send: { type: 'rule-add', rule: preview! }, note: `rule "${what}" sent` };
}

const PROMPT_DURATIONS_LABEL: Record<PromptDuration, string> = {
  once: 'once',
  process: 'until it exits',
  hour: 'for 1 h',
  session: 'until restart',
  always: 'always',
};
