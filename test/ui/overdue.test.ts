import { describe, expect, it } from 'vitest';
import { FLOW_COLUMNS } from '../../src/ui/columns.js';
import { flowKey, initialTable, reduce } from '../../src/state/reducer.js';
import type { FlowRecord } from '../../src/protocol/messages.js';

const T0 = 1_800_000_000_000;

function pendingRow(deadline: number) {
  const flow: FlowRecord = {
    id: 'f1', time: T0, direction: 'outbound', protocol: 'tcp', family: 'ipv4',
    local: { address: '10.0.0.2', port: 40000 }, remote: { address: '192.0.2.1', port: 443 }, pending: { deadline },
  };
  const state = reduce(initialTable({}, T0), { type: 'events', events: [{ source: 'web-2', message: { type: 'flow', flow } }] });
  return state.flows.get(flowKey('web-2', 'f1'))!;
}

const stateColumn = FLOW_COLUMNS.find((c) => c.id === 'state')!;
const cell = (now: number) => stateColumn.cell(pendingRow(T0 + 30_000), { now, ascii: false } as Parameters<typeof stateColumn.cell>[1]);

describe('a pending flow whose verdict never came', () => {
  it('counts down to its deadline, and is shown overdue, not "pending 0s", once the verdict is seconds late', () => {
    expect(cell(T0 + 1_000)).toBe('pending 29s');
    expect(cell(T0 + 30_000)).toBe('pending 0s');
    expect(cell(T0 + 32_000)).toBe('pending 0s');
    expect(cell(T0 + 40_000)).toBe('overdue');
  });
});
