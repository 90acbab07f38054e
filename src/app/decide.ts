// What a key press on a row should send, decided from plain data (the row, its source's hello);
// the Root carries the message out. Anything the extension cannot do becomes an honest note.
import type { Attribution } from '../attribution/types.js';
import type { Action, ClientMessage, RememberScope, RuleIdentity, RuleSpec } from '../protocol/messages.js';
import { identityFromKey } from '../rules/model.js';
import { displayName, flowPhase, processKey } from '../state/derive.js';
import type { FlowRow, SourceInfo, TableState } from '../state/types.js';
import type { ProcessRow, RuleRow } from '../state/views.js';

export type Decision = { send: ClientMessage; note: string } | { refuse: string };

export function cannotAct(info: SourceInfo | undefined): string | undefined {
  if (!info?.hello) return 'the extension is not connected; nothing was sent';
  if (info.hello.mode?.passive) {
    return 'this source is a passive monitor: it can show flows but not allow or block them (start `sudo flowtop agent` to block)';
  }
  if (!info.hello.capabilities.includes('verdicts')) {
    return `${info.hello.extension.name} does not accept verdicts: it can show flows but not allow or block them`;
  }
  return undefined;
}

/** `a` / `b`: answer a pending flow, or end a live one where the extension can. */
export function decideOnce(row: FlowRow, info: SourceInfo | undefined, action: Action): Decision {
  const refused = cannotAct(info);
  if (refused) return { refuse: refused };
  const name = displayName(row);
  const phase = flowPhase(row);
  if (phase === 'closed') return { refuse: `the flow of ${name} is already closed` };
  if (phase === 'pending') {
    return { send: { type: 'verdict', id: row.flow.id, action, remember: 'once' }, note: `${action} sent for ${name} -> ${row.flow.remote.address}:${row.flow.remote.port}` };
  }
  if (action === 'allow') return { refuse: `the flow of ${name} is not waiting for a verdict (it is ${phase})` };
  if (phase === 'blocked') return { refuse: `the flow of ${name} is already blocked` };
  if (!info!.hello!.capabilities.includes('end-flows')) return { refuse: `${info!.hello!.extension.name} cannot end a flow that is already allowed` };
  return { send: { type: 'verdict', id: row.flow.id, action: 'block', remember: 'once' }, note: `block sent for the live flow of ${name}` };
}

/** The rule identity of an attribution; only a verified code identity makes a rule (unknown never
 *  matches). The identity key is read as the agent reads it (rules/model.ts identityFromKey). */
export function ruleIdentity(a: Attribution): RuleIdentity | undefined {
  if (a.trust !== 'secure' || !a.identity) return undefined;
  return identityFromKey(a.identity, a.name ?? a.path);
}

/** `A` / `B` after the scope was confirmed: remember for this process identity (and endpoint). */
export function decideAlways(row: FlowRow, info: SourceInfo | undefined, action: Action, scope: RememberScope): Decision {
  const refused = cannotAct(info);
  if (refused) return { refuse: refused };
  const name = displayName(row);
  const where = scope === 'endpoint' ? ` to ${row.flow.remoteHost?.name ?? row.flow.remote.address}:${row.flow.remote.port}` : '';
  if (flowPhase(row) === 'pending') {
    return { send: { type: 'verdict', id: row.flow.id, action, remember: 'always', scope }, note: `${action} always for ${name}${where} sent` };
  }
  if (!info!.hello!.capabilities.includes('rules')) return { refuse: `${info!.hello!.extension.name} does not keep rules` };
  const identity = ruleIdentity(row.attribution);
  if (!identity) {
    return { refuse: `no verified code identity for ${name} (${row.attribution.trust}); a rule by name or PID could be spoofed, so none was made` };
  }
  const rule: RuleSpec = { action, identity, duration: { kind: 'always' } };
  if (scope === 'endpoint') {
    rule.endpoint = row.flow.remoteHost ? { host: row.flow.remoteHost.name, port: row.flow.remote.port } : { address: row.flow.remote.address, port: row.flow.remote.port };
    rule.protocol = row.flow.protocol;
  }
  return { send: { type: 'rule-add', rule }, note: `rule "${action} ${name}${where}" sent` };
}

export function decideDeleteRule(row: RuleRow, info: SourceInfo | undefined): Decision {
  // A fleet rule lives in the rules bucket: deleting its key removes it from every host it was for.
  if (info?.fleet?.role === 'server') {
    if (info.status.state !== 'connected') return { refuse: `not connected to ${info.id}; nothing was deleted` };
    return { send: { type: 'rule-remove', id: row.rule.id }, note: `fleet rule ${row.rule.id} deleted from the rules bucket` };
  }
  if (!info?.hello) return { refuse: 'the extension is not connected; nothing was sent' };
  if (!info.hello.capabilities.includes('rules')) return { refuse: `${info.hello.extension.name} does not keep rules` };
  return { send: { type: 'rule-remove', id: row.rule.id }, note: `delete sent for rule ${row.rule.id}` };
}

/** Flows of one process identity (a processes-view row) that wait for a verdict. */
export function pendingFlowsOf(state: TableState, process: ProcessRow): FlowRow[] {
  const out: FlowRow[] = [];
  for (const row of state.flows.values()) {
    if (flowPhase(row) === 'pending' && processKey(row.attribution, row.flow.token) === process.key) out.push(row);
  }
  return out;
}

/** `a` / `b` in the processes view: answer every pending flow of that identity, once. */
export function decideProcessOnce(
  process: ProcessRow,
  pending: readonly FlowRow[],
  infoOf: (source: string) => SourceInfo | undefined,
  action: Action,
): { sends: Array<{ source: string; send: ClientMessage }>; note: string } | { refuse: string } {
  if (pending.length === 0) {
    const refused = cannotAct(infoOf(process.sample.source));
    if (refused) return { refuse: refused };
    return { refuse: `no flow of ${process.name} is waiting for a verdict (A/B make a rule for this process)` };
  }
  const sends: Array<{ source: string; send: ClientMessage }> = [];
  for (const row of pending) {
    const d = decideOnce(row, infoOf(row.source), action);
    if ('refuse' in d) return d;
    sends.push({ source: row.source, send: d.send });
  }
  const n = sends.length;
  return { sends, note: `${action} sent for ${n} pending flow${n === 1 ? '' : 's'} of ${process.name}` };
}
