// The decision prompt (A / B), drawn from plain data: which flow it is fixed to (process and remote
// end), how long the decision lasts, what it covers, and the rule it will leave. Options that do
// not apply are dimmed and the first line of the note says why.
import { Text } from 'ink';
import { describePreview, previewRule, promptOptions, type PromptDuration, type PromptOption } from '../app/prompt.js';
import type { RememberScope } from '../protocol/messages.js';
import { displayName, flowPhase } from '../state/derive.js';
import type { FlowRow, SourceInfo } from '../state/types.js';
import type { Confirm } from '../state/ui.js';
import { clean } from './format.js';

/** Text for an ASCII-only terminal: the few non-ASCII marks notes and the prompt use. */
export function asciiSafe(text: string, ascii: boolean): string {
  return ascii ? text.replace(/→/g, '->').replace(/…/g, '...').replace(/·/g, '|') : text;
}

/** Lines the prompt takes in place of the status line. */
export const PROMPT_LINES = 4;

export interface DecisionPromptProps {
  confirm: Extract<Confirm, { kind: 'rule' }>;
  /** The flow as it is now (undefined: it left the table). */
  row: FlowRow | undefined;
  info: SourceInfo | undefined;
  now: number;
  ascii: boolean;
  /** A problem to say while the prompt covers the status line (a confirmation not taken). */
  notice?: string;
}

function Options<T extends string>({ title, options, chosen, off, ascii }: { title: string; options: readonly PromptOption<T>[]; chosen: T; off?: boolean; ascii: boolean }) {
  return (
    <Text wrap="truncate">
      <Text bold>{title}</Text>
      {options.map((o) => {
        const picked = o.id === chosen && !off;
        const text = ` ${o.key} ${asciiSafe(clean(o.label), ascii)} `;
        return (
          <Text key={o.id}>
            {' '}
            {o.unavailable || off ? <Text dimColor strikethrough={!!o.unavailable}>{text}</Text> : <Text inverse={picked} bold={picked}>{text}</Text>}
          </Text>
        );
      })}
    </Text>
  );
}

export function DecisionPrompt({ confirm, row, info, now, ascii, notice }: DecisionPromptProps) {
  const a = (text: string) => asciiSafe(clean(text), ascii);
  const verb = confirm.action === 'block' ? 'Block' : 'Allow';
  if (!row) {
    return (
      <Text color="yellow" wrap="truncate">
        {verb} {a(confirm.label)}: this flow has left the table (Esc closes)
      </Text>
    );
  }
  const options = promptOptions(row, info);
  const phase = flowPhase(row);
  const left = row.flow.pending ? Math.max(Math.ceil((row.flow.pending.deadline - now) / 1000), 0) : undefined;
  const state = phase === 'pending' ? `waits ${left} s for you` : `not waiting (${phase}): a rule for later flows`;
  const who = [row.attribution.pid ?? row.flow.pid, row.attribution.trust].filter((x) => x !== undefined).map(String);
  const preview = previewRule(row, confirm.action, confirm.duration, confirm.scope, now);
  const chosen = options.durations.find((d) => d.id === confirm.duration);
  const scope = options.scopes.find((s) => s.id === confirm.scope);
  const why = chosen?.unavailable ?? (confirm.duration !== 'once' ? scope?.unavailable : undefined);
  return (
    <>
      {notice ? (
        // For the few seconds it stands, the notice takes the title's line: it would not fit beside it.
        <Text color="red" bold wrap="truncate">
          {a(notice)}
        </Text>
      ) : (
      <Text color="yellow" bold wrap="truncate">
        {verb} {a(confirm.label)}{' '}
        <Text bold={false}>({who.join(', ')}, {row.flow.protocol} {row.flow.direction === 'outbound' ? 'out' : 'in'}) {a('·')} {state}</Text>
      </Text>
      )}
      <Options<PromptDuration> title="  how long:" options={options.durations} chosen={confirm.duration} ascii={ascii} />
      <Options<RememberScope> title="  for what:" options={options.scopes} chosen={confirm.scope} off={confirm.duration === 'once'} ascii={ascii} />
      <Text wrap="truncate">
        {'  '}
        {why ? <Text color="red">{a(why)}</Text> : <Text color={typeof preview === 'string' ? 'red' : 'green'}>{a(describePreview(preview, now, displayName(row)))}</Text>}
        <Text dimColor>{a(' · Enter confirms · Esc cancels')}</Text>
      </Text>
    </>
  );
}
