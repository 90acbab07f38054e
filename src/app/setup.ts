// Turns the command line into flow sources and attribution: extension sockets, the in-process demo,
// or — when no extension runs here — the passive monitor. Shared by `flowtop` and `flowtop list`.
import { Attributor } from '../attribution/attributor.js';
import { selectBackend } from '../attribution/select.js';
import type { AttributionBackend } from '../attribution/types.js';
import { startDemoExtension } from '../demo/index.js';
import { createPassiveMonitor } from '../monitor/index.js';
import type { TokenKind } from '../protocol/messages.js';
import { AGENT_GROUP } from '../agent/authorize.js';
import { createSocketSource } from '../source/socket-source.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
import { probeSocket } from '../source/probe.js';
import type { FlowSource } from '../source/types.js';
import type { AttributorLike } from './store.js';

export interface SourceFlags {
  sockets: string[];
  /** `--demo [SCENARIO]`: true for the default scenario. */
  demo?: string | true;
}

export interface OpenedSources {
  sources: FlowSource[];
  attributorFor(kind: TokenKind): AttributorLike;
  /** What was chosen, in words (e.g. why the passive monitor runs). */
  note?: string;
  /** One line the TUI keeps on screen: the agent runs but this user may not use it, and how to join. */
  banner?: string;
  close(): Promise<void>;
}

export async function openSources(flags: SourceFlags, env: NodeJS.ProcessEnv, defaultPath = defaultSocketPath()): Promise<OpenedSources> {
  let replay: AttributionBackend | undefined;
  const closers: Array<() => Promise<void> | void> = [];
  const sources: FlowSource[] = [];
  let note: string | undefined;
  let banner: string | undefined;
  if (flags.demo !== undefined) {
    const demo = await startDemoExtension({ scenario: flags.demo === true ? undefined : flags.demo, loop: true });
    replay = demo.replay;
    closers.push(() => demo.close());
    sources.push(createSocketSource(demo.socketPath));
  }
  const paths = explicitSocketPaths(flags.sockets, env);
  for (const path of paths) sources.push(createSocketSource(path));
  if (sources.length === 0) {
    // Chosen by flowtop, not by the person: used only if it will serve them, else the monitor.
    const probe = await probeSocket(defaultPath);
    if (probe.usable) {
      sources.push(createSocketSource(defaultPath));
    } else {
      note = `${probe.why}: showing this machine's connections with the passive monitor`;
      if (probe.denied) banner = `the agent at ${defaultPath} is for root and group ${AGENT_GROUP}; to join: sudo usermod -aG ${AGENT_GROUP} $USER, then log in again`;
      sources.push(createPassiveMonitor());
    }
  }
  const attributorFor = (kind: TokenKind): AttributorLike => new Attributor(selectBackend(kind, { replay }));
  return {
    sources,
    attributorFor,
    note,
    banner,
    async close() {
      for (const s of sources) s.close();
      for (const c of closers) await c();
    },
  };
}
