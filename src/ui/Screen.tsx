// The whole frame, from plain data. Never taller than `height` (the terminal's rows - 1), because
// Ink repaints the whole screen when a frame reaches the terminal's height.
import { Box, Text } from 'ink';
import type { Counts, HintedUser } from '../state/derive.js';
import { flowPhase, isOver } from '../state/derive.js';
import type { FlowRow, SourceInfo } from '../state/types.js';
import type { UiState } from '../state/ui.js';
import type { ProcessRow, RuleRow } from '../state/views.js';
import { glyphs } from './badges.js';
import { flowColumns, layout, processColumns, ruleColumns, ruleEndpointLabel, ruleIdentityLabel } from './columns.js';
import { showsHosts, sourceHost } from '../state/hosts.js';
import { Details, flowDetailLines, ruleDetailLines, type DetailLine } from './Details.js';
import { Header } from './Header.js';
import { Help } from './Help.js';
import { Table, type RowLook } from './Table.js';
import { DecisionPrompt, PROMPT_LINES, asciiSafe } from './DecisionPrompt.js';
import { bytes, clean, rate } from './format.js';
import { emptyNote } from './empty-note.js';
import { TRUST_WORD, trustReason } from './explain.js';
import { HistoryView, historyHints, type HistoryLoad } from './HistoryView.js';

export interface ScreenProps {
  width: number;
  /** Lines the frame may use: the terminal's rows - 1. */
  height: number;
  ascii: boolean;
  /** A standing line under the source lines (see RootProps.banner). */
  banner?: string;
  /** The time the table shows (the time it froze, while frozen). */
  now: number;
  /** The time it is, for what stays live while frozen: pending flows' countdowns and the decision
   *  prompt (see CellContext.liveNow); undefined: `now`. */
  liveNow?: number;
  sources: readonly SourceInfo[];
  /** The local name of a flow's uid as its extension sent it (hintedUserNames of the table shown). */
  hintedUser?: HintedUser;
  counts: Counts;
  ui: UiState;
  flows: readonly FlowRow[];
  processes: readonly ProcessRow[];
  rules: readonly RuleRow[];
  top: number;
  cursor: number;
  /** How the height is shared (screenLayout) and the open details pane: the app derives them once
   *  per frame (app/screen-model.ts), as it needs them to keep the cursor in view. */
  tableRows: number;
  detailRows: number;
  details?: { title: string; lines: DetailLine[] };
  /** Pending flows pinned at the top of the flows view, drawn above the scrolling rows. */
  sticky?: number;
  /** How many of the flows are pinned pending flows (shown whatever the filter). */
  pinned?: number;
  /** The flow the open decision prompt is about, as it is now, and its source. */
  prompt?: { row: FlowRow | undefined; info: SourceInfo | undefined };
  /** The bell rings for new pending flows (m toggles it). */
  bell?: boolean;
  /** The history view's data (what loaded, from which file). */
  history?: { load: HistoryLoad; path?: string };
}

/** Table rows kept beside the details pane while there is room for them. */
const TABLE_ROWS_BESIDE_DETAILS = 3;

/** How the height is shared; the app uses the same numbers to keep the cursor in view.
 *  `detailLines`: lines of the open details pane (undefined: closed). The pane gets what it needs;
 *  on a short terminal the table shrinks down to the selected row first, then the pane scrolls. */
export function screenLayout(height: number, sourceCount: number, detailLines: number | undefined, footerLines = 1): { tableRows: number; detailRows: number } {
  const header = Math.max(sourceCount, 1) + 2;
  const status = footerLines;
  const tableHeader = 1;
  const room = Math.max(height - header - status - tableHeader, 1);
  if (detailLines === undefined) return { tableRows: room, detailRows: 0 };
  const want = detailLines + 1;
  const detailRows = room - TABLE_ROWS_BESIDE_DETAILS >= want ? want : Math.max(Math.min(want, room - 1), 0);
  return { tableRows: Math.max(room - detailRows, 1), detailRows };
}

/** The details pane's title and lines for the selected row of a view (undefined: no row). */
export function selectedDetails(view: UiState['view'], flow: FlowRow | undefined, process: ProcessRow | undefined, rule: RuleRow | undefined, hintedUser?: HintedUser): { title: string; lines: DetailLine[] } | undefined {
  if (view === 'flows') return flow ? { title: 'flow details', lines: flowDetailLines(flow, hintedUser) } : undefined;
  if (view === 'processes') return process ? { title: 'process details', lines: processDetailLines(process) } : undefined;
  if (view === 'history') return undefined;
  return rule ? { title: `rule ${ruleIdentityLabel(rule.rule)} -> ${ruleEndpointLabel(rule.rule)}`, lines: ruleDetailLines(rule) } : undefined;
}

function processDetailLines(p: ProcessRow): DetailLine[] {
  const a = p.attribution;
  const reason = trustReason(a);
  return [
    { label: 'process', value: clean(p.name) },
    { label: 'trust', value: TRUST_WORD[p.trust] },
    ...(reason ? [{ label: 'why', value: clean(reason), color: 'red' }] : []),
    { label: 'identity', value: clean(p.identity ?? 'none (no verified code identity)') },
    ...(p.path ? [{ label: 'path', value: clean(p.path) }] : []),
    ...(p.signer ? [{ label: 'signer', value: clean(p.signer.label) }] : []),
    ...(a.sha256 ? [{ label: 'sha256', value: a.sha256 }] : []),
    { label: 'flows', value: `${p.live} live, ${p.blocked} blocked, ${p.pids} PIDs` },
    ...hostLines(p),
  ];
}

/** The same code on each host: how many run it, and each one's traffic (busiest first). */
function hostLines(p: ProcessRow): DetailLine[] {
  if (p.hosts.size <= 1) return [];
  const shares = [...p.hosts].sort((a, b) => b[1].rx + b[1].tx - (a[1].rx + a[1].tx) || (a[0] < b[0] ? -1 : 1));
  return [
    { label: 'hosts', value: `${p.hosts.size} run${p.hosts.size === 1 ? 's' : ''} it` },
    ...shares.map(([host, s]) => ({ label: `  ${clean(host)}`.slice(0, 12), value: `${s.live} live, rx ${bytes(s.rx)} tx ${bytes(s.tx)}, ${rate(s.rate)}` })),
  ];
}

/** A pending flow's last seconds: its row turns urgent. */
export const URGENT_MS = 10_000;

function flowLook(r: FlowRow, now: number): RowLook {
  const phase = flowPhase(r);
  const pending = phase === 'pending';
  return {
    trust: r.attribution.trust,
    alarm: r.attribution.trust === 'insecure' || r.appAttribution?.trust === 'insecure',
    dim: isOver(r),
    pending,
    urgent: pending && (r.flow.pending?.deadline ?? Number.POSITIVE_INFINITY) - now <= URGENT_MS,
  };
}

function sortLabel(ui: UiState, ascii: boolean): string {
  const g = glyphs(ascii);
  if (ui.view === 'history') return `bytes ${g.sortDown}`;
  if (ui.view === 'flows') return `${ui.flowSort.column} ${ui.flowSort.reverse ? g.sortUp : g.sortDown}`;
  if (ui.view === 'processes') return `${ui.processSort.column} ${ui.processSort.reverse ? g.sortUp : g.sortDown}`;
  return 'created';
}

/** Lines the footer (status line, or the decision prompt) takes. */
export function footerLines(ui: UiState): number {
  return ui.confirm?.kind === 'rule' && !ui.help ? PROMPT_LINES : 1;
}

function StatusLine({ ui, ascii, bell, width }: { ui: UiState; ascii: boolean; bell: boolean; width: number }) {
  const g = glyphs(ascii);
  if (ui.editingFilter) {
    return <Text wrap="truncate">/<Text bold>{clean(ui.filter.query)}</Text>{g.caret} <Text dimColor>(Enter keeps, Esc clears)</Text></Text>;
  }
  if (ui.confirm?.kind === 'delete-rule') {
    return <Text color="yellow" wrap="truncate">Delete rule {clean(ui.confirm.label)}? y/Enter deletes, Esc cancels</Text>;
  }
  if (ui.status) return <Text color={ui.status.tone === 'error' ? 'red' : 'green'} wrap="truncate">{asciiSafe(clean(ui.status.text), ascii)}</Text>;
  const hints = ui.view === 'history' ? historyHints(ui.history) : ['? help', 'n next pending', 'a/b allow/block', 'A/B rule', '/ filter', '! not secure', 's sort', 'Enter details', bell ? 'm mute' : 'm unmute', 'q quit'];
  // As many whole hints as fit: a hint cut in half helps nobody (and `…` is not ASCII).
  let line = '';
  for (const hint of hints) {
    const next = line ? line + g.sep + hint : hint;
    if (next.length > width) break;
    line = next;
  }
  return <Text dimColor wrap="truncate">{line}</Text>;
}

export function Screen(p: ScreenProps) {
  const { ui, ascii, now, width } = p;
  const liveNow = p.liveNow ?? now;
  const hosts = showsHosts(p.sources);
  const infoById = new Map(p.sources.map((s) => [s.id, s]));
  const ctx = { now, liveNow, ascii, hostOf: (source: string) => sourceHost(infoById.get(source)), hintedUser: p.hintedUser };
  const badgeWidth = ascii ? 4 : 1;
  const { details, tableRows, detailRows } = p;
  const tableWidth = width - badgeWidth - 1;
  let body;
  if (ui.help) {
    body = <Help height={tableRows + 1 + detailRows} ascii={ascii} />;
  } else if (ui.view === 'flows') {
    body = (
      <Table
        columns={layout(flowColumns(hosts), tableWidth)}
        rows={p.flows}
        look={(r) => flowLook(r, liveNow)}
        top={p.top}
        sticky={p.sticky}
        cursor={p.cursor}
        height={tableRows}
        ctx={ctx}
        sort={ui.flowSort}
        badgeWidth={badgeWidth}
      />
    );
  } else if (ui.view === 'history') {
    body = (
      <HistoryView
        width={width}
        height={tableRows + 1}
        ascii={ascii}
        now={now}
        state={ui.history}
        load={p.history?.load ?? { loading: false, unavailable: { reason: 'this flowtop keeps no history' } }}
        path={p.history?.path}
        window={{ index: p.cursor, top: p.top }}
      />
    );
  } else if (ui.view === 'processes') {
    body = (
      <Table
        columns={layout(processColumns(hosts), tableWidth)}
        rows={p.processes}
        look={(r) => ({ trust: r.trust, alarm: r.trust === 'insecure', dim: r.live === 0 })}
        top={p.top}
        cursor={p.cursor}
        height={tableRows}
        ctx={ctx}
        sort={ui.processSort}
        badgeWidth={badgeWidth}
      />
    );
  } else {
    body = (
      <Table
        columns={layout(ruleColumns(hosts), width)}
        rows={p.rules}
        look={(r) => ({ alarm: false, dim: !r.rule.enabled })}
        top={p.top}
        cursor={p.cursor}
        height={tableRows}
        ctx={ctx}
        badgeWidth={0}
      />
    );
  }
  const note = emptyNote({ ui, sources: p.sources, shown: { flows: p.flows.length, processes: p.processes.length, rules: p.rules.length }, pinned: p.pinned ?? 0 });
  return (
    // No overflow clipping: every part is sized to fit, and Ink's clipping re-slices each line.
    <Box flexDirection="column" width={width} height={p.height}>
      {/* Header and status line never shrink: if the body ever overflows, it is the one cut. */}
      <Box flexDirection="column" flexShrink={0}>
        <Header
          sources={p.sources}
          banner={p.banner}
          counts={p.counts}
          now={now}
          view={ui.view}
          sortLabel={sortLabel(ui, ascii)}
          query={ui.filter.query}
          onlyInsecure={ui.filter.onlyInsecure}
          frozen={ui.frozen !== undefined}
          width={width}
          ascii={ascii}
        />
      </Box>
      <Box flexDirection="column" flexGrow={1}>
        {body}
        {note ? <Text dimColor>{asciiSafe(note, ascii)}</Text> : null}
        {details && !ui.help ? <Details title={details.title} lines={details.lines} height={detailRows} scroll={ui.detailScroll} ascii={ascii} /> : null}
      </Box>
      <Box flexShrink={0} flexDirection="column">
        {ui.confirm?.kind === 'rule' && !ui.help ? (
          <DecisionPrompt confirm={ui.confirm} row={p.prompt?.row} info={p.prompt?.info} now={liveNow} ascii={ascii} {...(ui.status?.tone === 'error' ? { notice: ui.status.text } : {})} />
        ) : (
          <StatusLine ui={ui} ascii={ascii} bell={p.bell ?? true} width={width} />
        )}
      </Box>
    </Box>
  );
}
