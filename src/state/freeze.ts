// Freeze: a copy of the table as it was when the person pressed Space. The live table is updated in
// place (rows' counters and rates, the flow Map itself), so showing it "frozen" still moved every
// counter, rate and age. The copy holds its own row objects and its own clock; the live table goes
// on being updated underneath and is shown again on resume.
import { Journal } from './journal.js';
import { TableRow } from './row.js';
import type { FlowRow, TableState } from './types.js';

function copyRow(row: FlowRow): FlowRow {
  const copy = new TableRow(
    row.key,
    row.flow,
    row.attribution,
    { appAttribution: row.appAttribution, closedAt: row.closedAt, endReason: row.endReason },
    { rx: row.rx, tx: row.tx, rxRate: row.rxRate, txRate: row.txRate, bytesTime: row.bytesTime },
    row.rev,
  );
  return copy;
}

/** The table at `now`, detached from the live one: nothing in it changes afterwards. */
export function freezeTable(live: TableState, now: number): TableState {
  const flows = new Map<string, FlowRow>();
  for (const [key, row] of live.flows) flows.set(key, copyRow(row));
  return {
    ...live,
    now: Math.max(live.now, now),
    flows,
    attributions: new Map(live.attributions),
    closed: [...live.closed],
    tally: { ...live.tally },
    // The copy never changes, so sorters see one revision of it and sort it once.
    journal: new Journal(1),
    journalSince: live.rev,
  };
}
