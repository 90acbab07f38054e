// The passive monitor (no root): the embedded default flow source when no extension socket runs.
export { createPassiveMonitor } from './monitor.js';
export type { PassiveMonitor, PassiveMonitorOptions, PassiveMonitorStats } from './monitor.js';
export { OwnerIndex } from './owners.js';
export { ListenerIndex, isFlowSocket } from './classify.js';
