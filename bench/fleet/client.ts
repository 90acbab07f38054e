// The central client of the fleet bench, in its own process so its CPU and memory are its own: the
// real fleet source, source merge and flow store, and per snapshot the screen model the TUI draws
// from (sort, filter, pinning, counts) without Ink's drawing. It measures, for the window the parent
// asks for: the time from an event's publish (flow.time, set by the simulated agent when it published)
// to its row in the table, for 1 new flow in 25; and the verdict round trip: a pending flow appears,
// the "key press" sends allow to its host, and the row turns allowed (the agent's answer applied).
import { openFleet } from '../../src/fleet/fleet-source.js';
import { natsLinkConfig } from '../../src/fleet/connect-options.js';
import { mergeSources } from '../../src/source/merge.js';
import { createFlowStore } from '../../src/app/store.js';
import { Attributor } from '../../src/attribution/attributor.js';
import { createReplayBackend } from '../../src/attribution/replay-backend.js';
import { ScreenModeler } from '../../src/app/screen-model.js';
import { initialUi } from '../../src/state/ui.js';
import { flowPhase } from '../../src/state/derive.js';
import { limitHeapGrowth } from '../../src/app/heap-growth.js';

limitHeapGrowth();
const url = process.argv[2]!;
const fleet = openFleet({ link: natsLinkConfig('', { nats: url })!, user: 'bench', replayMs: 0 });
const merged = mergeSources([]);
merged.addFrom(fleet.sources$);
const store = createFlowStore({ sources: merged, attributorFor: () => new Attributor(createReplayBackend(new Map())), clock: { now: () => Date.now() } });
const modeler = new ScreenModeler();
const ui = initialUi({ bell: false });

/** Rows awaited in the table: key → publish time. */
const awaited = new Map<string, number>();
/** Pending flows to answer once they show: key → [host, id]. */
const toAnswer = new Map<string, [string, string]>();
/** Verdicts sent: key → send time. */
const sent = new Map<string, number>();
let eventLatency: number[] = [];
let verdictRtt: number[] = [];
let events = 0;

merged.events$.subscribe((e) => {
  events++;
  const m = e.message;
  if (m.type !== 'flow') return;
  const key = `${e.source}#${m.flow.id}`;
  if (m.flow.pending) toAnswer.set(key, [e.source, m.flow.id]);
  else if (Number(m.flow.id.slice(1)) % 25 === 0) awaited.set(key, m.flow.time);
});

store.snapshots$.subscribe((state) => {
  modeler.model(ui, state, { rows: 50, columns: 200 }, 0);
});

store.states$.subscribe((state) => {
  const now = Date.now();
  for (const [key, at] of awaited) {
    if (state.flows.has(key)) {
      eventLatency.push(now - at);
      awaited.delete(key);
    } else if (now - at > 60_000) awaited.delete(key);
  }
  for (const [key, [host, id]] of toAnswer) {
    if (!state.flows.has(key)) continue;
    toAnswer.delete(key);
    sent.set(key, Date.now());
    store.send(host, { type: 'verdict', id, action: 'allow', remember: 'once' });
  }
  for (const [key, at] of sent) {
    const row = state.flows.get(key);
    if (row && flowPhase(row) === 'allowed') {
      verdictRtt.push(now - at);
      sent.delete(key);
    } else if (now - at > 30_000) sent.delete(key);
  }
});

function ticks(): number {
  return process.cpuUsage().user + process.cpuUsage().system;
}

let window = { cpu: ticks(), at: performance.now(), events: 0 };
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'start') {
    eventLatency = [];
    verdictRtt = [];
    window = { cpu: ticks(), at: performance.now(), events };
    process.send!({ started: true });
  } else if (msg.cmd === 'stop') {
    const seconds = (performance.now() - window.at) / 1000;
    process.send!({
      eventLatency,
      verdictRtt,
      cpu: (ticks() - window.cpu) / 1e6 / seconds,
      rss: process.memoryUsage().rss,
      eventsPerSecond: (events - window.events) / seconds,
      rows: store.current().flows.size,
      hosts: fleet.hosts().length,
      awaiting: awaited.size,
    });
  } else if (msg.cmd === 'exit') {
    store.close();
    void fleet.close().then(() => process.exit(0));
  }
});
process.send!({ ready: true });
