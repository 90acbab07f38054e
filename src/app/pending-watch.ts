// What changed among the flows that wait for a verdict between two snapshots of the live table:
// which started waiting (the bell rings for them) and which stopped (decided, ended or gone), so
// the app can say when the default decided a flow and close a prompt whose flow was decided.
import { flowPhase } from '../state/derive.js';
import { pendingRows } from '../state/pending.js';
import type { FlowRow, SourceInfo, TableState } from '../state/types.js';
import { flowLabel } from './prompt.js';

export interface PendingChanges {
  /** Flows that wait now and did not at the last update. */
  appeared: FlowRow[];
  /** Flows that waited at the last update and do not now: as they were, and as they are (absent
   *  when they left the table). */
  settled: Array<{ was: FlowRow; now: FlowRow | undefined }>;
}

export class PendingWatch {
  private seen = new Map<string, FlowRow>();

  update(live: TableState): PendingChanges {
    const rows = pendingRows(live);
    if (rows.length === 0 && this.seen.size === 0) return { appeared: [], settled: [] };
    const next = new Map<string, FlowRow>();
    const appeared: FlowRow[] = [];
    for (const row of rows) {
      next.set(row.key, row);
      if (!this.seen.has(row.key)) appeared.push(row);
    }
    const settled: PendingChanges['settled'] = [];
    for (const [key, was] of this.seen) if (!next.has(key)) settled.push({ was, now: live.flows.get(key) });
    this.seen = next;
    return { appeared, settled };
  }
}

/** Whether a source can be asked: it holds flows for a verdict (not a passive monitor). */
export function asksForVerdicts(info: SourceInfo | undefined): boolean {
  const hello = info?.hello;
  return !!hello && !hello.mode?.passive && hello.capabilities.includes('verdicts');
}

/** "curl → 127.0.0.1:8000 blocked by the default after 30 s" when the default (the deadline, or a
 *  policy switch) decided a flow that waited; "… was allowed by a rule" and the like otherwise;
 *  undefined when nothing worth saying happened. */
export function settledNote(was: FlowRow, now: FlowRow | undefined, at: number): string | undefined {
  // Named from the row as it is now: the one first seen waiting may not have been attributed yet.
  const label = flowLabel(now ?? was);
  if (!now) return `${label} left the table while it waited for a verdict`;
  const verdict = now.flow.verdict;
  const waited = Math.max(Math.round((at - was.flow.time) / 1000), 0);
  if (!verdict) return flowPhase(now) === 'closed' ? `${label} ended while it waited for a verdict (${now.endReason ?? 'closed'})` : undefined;
  const done = verdict.action === 'block' ? 'blocked' : 'allowed';
  if (verdict.by === 'default') {
    const why = verdict.reason && verdict.reason !== 'nobody answered in time' ? ` (${verdict.reason})` : '';
    return `${label} ${done} by the default after ${waited} s${why}`;
  }
  if (verdict.by === 'rule') return `${label} ${done} by rule ${verdict.ruleId ?? ''}`.trimEnd();
  return undefined; // a person decided: this client's own note, or another client's
}

/** The note when the prompt's flow was decided (or left) before the person answered. */
export function promptClosedNote(was: FlowRow, now: FlowRow | undefined, at: number): string {
  const what = settledNote(was, now, at) ?? `${flowLabel(was)} was ${now?.flow.verdict?.action === 'block' ? 'blocked' : 'allowed'} by another client`;
  return `${what} before you answered; nothing was sent`;
}
