// Byte counters and flow ends for tracked flows, shared by the passive monitor and the agent.
export { TrafficTracker, indexByTuple, socketOf } from './tracker.js';
export type { FlowCounters, FlowEnd, TrackedFlowSpec, TrafficTrackerOptions, TrafficUpdate } from './tracker.js';
export { startTrafficPoller } from './poller.js';
export type { TrafficPoller } from './poller.js';
export { openSocketReader } from './reader.js';
export type { SocketReader } from './reader.js';
