// The top three lines: who we are connected to and how, the counts, and the view settings.
import { Text } from 'ink';
import type { Counts } from '../state/derive.js';
import type { SourceInfo } from '../state/types.js';
import { VIEWS, type ViewName } from '../state/ui.js';
import { clean, percent, rate } from './format.js';
import { statusText } from './status.js';
import { glyphs } from './badges.js';
import { Line } from './Line.js';
import { fleetLines } from '../state/hosts.js';

export { statusText };

export const PASSIVE_NOTE = 'passive monitor (start `sudo flowtop agent` to block)';

export function isPassive(info: SourceInfo): boolean {
  const hello = info.hello;
  if (!hello) return false;
  return hello.mode?.passive === true || !hello.capabilities.includes('verdicts');
}

/** The extension's settings a person must know: what happens when it dies, and to flows nobody answers. */
export function modeText(hello: NonNullable<SourceInfo['hello']>, sep: string): string {
  const mode = hello.mode;
  if (!mode) return '';
  const parts: string[] = [];
  if (mode.failOpen !== undefined) parts.push(mode.failOpen ? 'fail-open' : 'fail-closed');
  if (mode.defaultAction) {
    const wait = mode.timeoutMs !== undefined ? ` after ${Math.round(mode.timeoutMs / 1000)}s` : '';
    parts.push(`unanswered: ${mode.defaultAction}${wait}`);
  }
  if (mode.attribution) parts.push(`owners: ${clean(mode.attribution)}`);
  return parts.join(sep);
}

export interface HeaderProps {
  sources: readonly SourceInfo[];
  /** A standing line under the source lines. */
  banner?: string;
  counts: Counts;
  now: number;
  view: ViewName;
  sortLabel: string;
  query: string;
  onlyInsecure: boolean;
  frozen: boolean;
  width: number;
  ascii: boolean;
}

export function Header(p: HeaderProps) {
  const sep = glyphs(p.ascii).sep;
  const fleets = fleetLines(p.sources);
  const fleetText = fleets.map((f) => {
    const st = statusText(f.server.status, p.now);
    const gone = f.gone.length > 0 ? `, ${f.gone.length} gone (${f.gone.slice(0, 4).map(clean).join(' ')}${f.gone.length > 4 ? ' …' : ''})` : '';
    return (
      <Line key={`fleet ${f.server.id}`} width={p.width}>
        <Text bold>flowtop</Text>
        <Text>{sep}fleet {clean(f.server.id)}{sep}</Text>
        <Text color={st.color}>{st.text}</Text>
        <Text>{sep}{f.hosts} host{f.hosts === 1 ? '' : 's'}: </Text>
        <Text color={f.connected > 0 ? 'green' : 'yellow'}>{f.connected} connected</Text>
        {gone ? <Text color="red">{gone}</Text> : null}
      </Line>
    );
  });
  const single = p.sources.filter((s) => !s.fleet);
  const lines = p.sources.length === 0 ? [<Text key="none" color="red">no flow source</Text>] : [...fleetText, ...single.map((s) => {
    const hello = s.hello;
    const who = hello ? `${clean(hello.extension.name)} ${clean(hello.extension.version)} on ${clean(hello.host)} (${hello.platform})` : clean(s.id);
    const st = statusText(s.status, p.now);
    return (
      <Line key={s.id} width={p.width}>
        <Text bold>flowtop</Text>
        <Text>{sep}{who}{sep}</Text>
        <Text color={st.color}>{st.text}</Text>
        {isPassive(s) ? <Text color="yellow">{sep}{PASSIVE_NOTE}</Text> : null}
        {hello && !isPassive(s) && modeText(hello, sep) ? <Text dimColor>{sep}{modeText(hello, sep)}</Text> : null}
      </Line>
    );
  })];
  const c = p.counts;
  const views = VIEWS.map((v, i) => (v === p.view ? `[${i + 1}:${v}]` : ` ${i + 1}:${v} `)).join('');
  return (
    <>
      {lines}
      {p.banner ? <Line width={p.width}><Text color="yellow">{clean(p.banner)}</Text></Line> : null}
      {/* Lines that change every frame under load: fixed-width Lines, which Ink does not measure
          and so does not remember (see Line.tsx). */}
      <Line width={p.width}>
        <Text>{c.live} live{sep}</Text>
        <Text color={c.pending ? 'yellow' : undefined}>{c.pending} pending</Text>
        <Text>{sep}{c.blocked} blocked{sep}{percent(c.secureShare)} secure{sep}{c.closed} closed{sep}rx {rate(c.rxRate)} tx {rate(c.txRate)}</Text>
      </Line>
      <Text wrap="truncate">
        {views}{sep}sort {p.sortLabel}
        {p.query ? `${sep}filter "${clean(p.query)}"` : ''}
        {p.onlyInsecure ? `${sep}only not-secure` : ''}
        {p.frozen ? <Text color="cyan" bold>{sep}FROZEN (space resumes)</Text> : null}
      </Text>
    </>
  );
}
