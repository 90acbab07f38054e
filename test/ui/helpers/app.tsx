// Runs the real Root + store on given sources with the real Attributor over a replay backend.
import { render } from 'ink-testing-library';
import { Attributor } from '../../../src/attribution/attributor.js';
import { createReplayBackend } from '../../../src/attribution/replay-backend.js';
import type { Attribution } from '../../../src/attribution/types.js';
import { Root } from '../../../src/app/Root.js';
import { createFlowStore, type FlowStore } from '../../../src/app/store.js';
import type { FlowSource } from '../../../src/source/types.js';
import type { HistorySource } from '../../../src/app/history-source.js';
import type { FlowRow, TableOptions } from '../../../src/state/types.js';
import { setFastOutput } from '../../../src/ui/fast-output.js';
// The app composes frames the fast way; the frame tests check that way.
await setFastOutput(true);


export interface Started {
  instance: ReturnType<typeof render>;
  store: FlowStore;
  quits: number;
  stop(): void;
}

export function startApp(options: {
  sources: FlowSource[];
  attributions?: Map<string, Attribution>;
  ascii?: boolean;
  rows?: number;
  columns?: number;
  table?: Partial<TableOptions>;
  /** Snapshot rate to the screen (production: 100 ms). */
  snapshotMs?: number;
  userName?: (uid: number) => string | undefined;
  /** Called for flows that start waiting for a verdict (production: the terminal bell). */
  alert?: (flows: readonly FlowRow[]) => void;
  bell?: boolean;
  /** The history the history view reads, and the bell for its events. */
  history?: HistorySource;
  alertEvents?: (details: readonly string[]) => void;
}): Started {
  const backend = createReplayBackend(options.attributions ?? new Map());
  const store = createFlowStore({
    sources: options.sources,
    attributorFor: () => new Attributor(backend),
    clock: { now: () => Date.now() },
    table: options.table,
    batchMs: 5,
    userName: options.userName,
    snapshotMs: options.snapshotMs ?? 20,
  });
  const started: Started = {
    instance: undefined as unknown as ReturnType<typeof render>,
    store,
    quits: 0,
    stop() {
      started.instance.unmount();
      store.close();
    },
  };
  started.instance = render(
    <Root
      store={store}
      clock={{ now: () => Date.now() }}
      ascii={options.ascii ?? false}
      viewport={{ rows: options.rows ?? 30, columns: options.columns ?? 120 }}
      alert={options.alert}
      bell={options.bell}
      history={options.history}
      alertEvents={options.alertEvents}
      onQuit={() => started.quits++}
    />,
  );
  return started;
}
