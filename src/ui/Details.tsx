// The details pane: everything known about the selected flow's process, and why it is (not) trusted.
import { Text } from 'ink';
import type { Attribution } from '../attribution/types.js';
import type { FlowRow } from '../state/types.js';
import type { RuleRow } from '../state/views.js';
import { extensionIdentity, flowPhase, identityName, processName, type HintedUser } from '../state/derive.js';
import { TRUST_COLOR } from './badges.js';
import { ruleEndpointLabel, ruleIdentityLabel } from './columns.js';
import { clean, endpoint, hex } from './format.js';
import { TRUST_WORD, trustReason } from './explain.js';

export interface DetailLine {
  label: string;
  value: string;
  color?: string;
}

function attributionLines(a: Attribution, prefix = '', name = processName(a)): DetailLine[] {
  const lines: DetailLine[] = [];
  const who = `${name}${a.pid !== undefined ? ` (pid ${a.pid})` : ''}`;
  lines.push({ label: `${prefix}process`, value: clean(who) });
  lines.push({ label: `${prefix}trust`, value: TRUST_WORD[a.trust], color: TRUST_COLOR[a.trust] });
  const reason = trustReason(a);
  if (reason) lines.push({ label: `${prefix}why`, value: clean(reason), color: 'red' });
  if (a.uid !== undefined || a.user) lines.push({ label: `${prefix}user`, value: clean(`${a.user ?? '?'} (uid ${a.uid ?? '?'})`) });
  if (a.path) lines.push({ label: `${prefix}path`, value: clean(a.path) });
  if (a.identity) lines.push({ label: `${prefix}identity`, value: clean(a.identity) });
  if (a.signer) lines.push({ label: `${prefix}signer`, value: clean(`${a.signer.label} (${a.signer.kind})`) });
  if (a.sha256) lines.push({ label: `${prefix}sha256`, value: a.sha256 });
  if (a.parents && a.parents.length > 0) {
    lines.push({ label: `${prefix}parents`, value: clean(a.parents.map((p) => `${p.name}(${p.pid})`).join(' <- ')) });
  }
  return lines;
}

/** The process as this client found it; where its lookup could not name it, the agent's identity
 *  (said to be the agent's), else the PID hint the extension sent. */
function ownName(row: FlowRow): string {
  const agent = extensionIdentity(row);
  if (agent) return `${identityName(agent)} (identified by the agent)`;
  return processName(row.attribution, row.flow.pid);
}

/** The identity the agent (the extension) sent with the flow, said to be its word: it checked the
 *  exact process instance when the flow connected; this client did not, so the trust stays its own. */
function agentIdentityLines(row: FlowRow): DetailLine[] {
  const id = row.flow.identity;
  if (!id) return [];
  const what = `${id.kind}:${id.package !== undefined ? `${id.package}:` : ''}${id.value}`;
  const lines: DetailLine[] = [{ label: 'agent identity', value: clean(what) }];
  if (id.path !== undefined) lines.push({ label: 'agent path', value: clean(id.path) });
  const fallback = extensionIdentity(row) !== undefined;
  lines.push({
    label: 'from',
    value: clean(`identified by the agent (${row.source}) when it connected: it checked that exact process instance${fallback ? '; this client could not check it itself, so the trust above stays its own' : ''}`),
  });
  return lines;
}

/** The uid the agent sent with the flow, when this client's attribution has no user of its own (the
 *  process had exited, or is still being looked up): named with this machine's users where `hinted`
 *  can (a flow from this machine), and said to be the agent's word. */
function agentUserLine(row: FlowRow, hinted?: HintedUser): DetailLine[] {
  const a = row.attribution;
  const uid = row.flow.uid;
  if (a.uid !== undefined || a.user || uid === undefined) return [];
  const name = hinted?.(row);
  return [{ label: 'user', value: clean(`${name !== undefined ? `${name} (uid ${uid})` : `uid ${uid}`}: the agent's word; this client did not check it`) }];
}

/** `hinted`: the local name of the agent's uid (see hintedUserNames); without it the uid stays a number. */
export function flowDetailLines(row: FlowRow, hinted?: HintedUser): DetailLine[] {
  const f = row.flow;
  const lines: DetailLine[] = [
    { label: 'flow', value: clean(`${f.id} from ${row.source}, ${flowPhase(row)}${row.endReason ? ` (${row.endReason})` : ''}`) },
    { label: 'remote', value: clean(`${f.remoteHost ? `${f.remoteHost.name} (${f.remoteHost.source}) ` : ''}${endpoint(f.remote.address, f.remote.port)} ${f.protocol} ${f.direction}, local ${endpoint(f.local.address, f.local.port)}`) },
    ...attributionLines(row.attribution, '', ownName(row)),
    ...agentUserLine(row, hinted),
    ...agentIdentityLines(row),
    { label: 'token', value: f.token ? hex(f.token) : clean(f.ownerError ? `none (${f.ownerError})` : 'none') },
  ];
  if (f.verdict) lines.push({ label: 'verdict', value: `${f.verdict.action} by ${f.verdict.by}${f.verdict.ruleId ? ` (rule ${clean(f.verdict.ruleId)})` : ''}${f.verdict.reason ? `: ${clean(f.verdict.reason)}` : ''}` });
  if (f.verdict?.decider) lines.push({ label: 'decided by', value: clean(f.verdict.decider) });
  if (f.packets !== undefined && f.packets > 1) lines.push({ label: 'packets', value: `${f.packets} judged in this conversation (${f.protocol === 'udp' ? 'datagrams' : 'connection attempts'})` });
  if (row.appAttribution) {
    lines.push({ label: 'app token', value: hex(f.appToken) });
    lines.push(...attributionLines(row.appAttribution, 'app '));
  } else if (f.appToken && f.appToken !== f.token) {
    lines.push({ label: 'app token', value: hex(f.appToken) });
  }
  return lines;
}

export function ruleDetailLines(r: RuleRow): DetailLine[] {
  const rule = r.rule;
  return [
    { label: 'rule', value: clean(`${rule.id} from ${r.source}`) },
    ...(r.fleet ? [{ label: 'fleet rule', value: r.fleet === 'all' ? 'for every host (rules bucket)' : `for host ${clean(r.host ?? '?')} (rules bucket)` }] : r.host !== undefined && r.host !== r.source ? [{ label: 'host', value: clean(r.host) }] : []),
    { label: 'action', value: `${rule.action}${rule.blockMode ? ` (${rule.blockMode})` : ''}` },
    { label: 'identity', value: ruleIdentityLabel(rule) + (rule.identity ? clean(` = ${rule.identity.kind}:${rule.identity.value}`) : '') },
    { label: 'endpoint', value: ruleEndpointLabel(rule) },
    { label: 'duration', value: rule.duration.kind },
    { label: 'hits', value: String(rule.hits) },
    ...(rule.note ? [{ label: 'note', value: clean(rule.note) }] : []),
  ];
}

/** The pane: a title line, then as many lines as `height` allows from `scroll` on (J/K scroll it). */
export function Details({ title, lines, height, scroll, ascii }: { title: string; lines: readonly DetailLine[]; height: number; scroll: number; ascii: boolean }) {
  const room = Math.max(height - 1, 0);
  const from = Math.min(scroll, Math.max(lines.length - room, 0));
  const shown = lines.slice(from, from + room);
  const cut = shown.length < lines.length;
  const where = cut ? ` lines ${from + 1}-${from + shown.length} of ${lines.length}, J/K scroll,` : '';
  const dash = ascii ? '--' : '──';
  // Values line up after the longest label shown, with at least one space ("agent identity" is 14).
  const labelWidth = Math.max(12, ...shown.map((l) => l.label.length + 1));
  return (
    <>
      <Text bold color="cyan" wrap="truncate">{dash} {title} ({where.trimStart()}{cut ? ' ' : ''}Esc closes) {dash}</Text>
      {shown.map((l, i) => (
        <Text key={i} wrap="truncate">
          <Text dimColor>{l.label.padEnd(labelWidth)}</Text>
          <Text color={l.color}>{l.value}</Text>
        </Text>
      ))}
    </>
  );
}
