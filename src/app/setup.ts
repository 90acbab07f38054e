// Turns the command line into flow sources and attribution: extension sockets, the in-process demo,
// or — when no extension runs here — the passive monitor. Shared by `flowtop` and `flowtop list`.
import { accessSync, constants, existsSync } from 'node:fs';
import { Attributor } from '../attribution/attributor.js';
import { selectBackend } from '../attribution/select.js';
import type { AttributionBackend } from '../attribution/types.js';
import { startDemoExtension } from '../demo/index.js';
import { createPassiveMonitor } from '../monitor/index.js';
import type { TokenKind } from '../protocol/messages.js';
import { AGENT_GROUP } from '../agent/authorize.js';
import { createSocketSource } from '../source/socket-source.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
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

export async function openSources(flags: SourceFlags, env: NodeJS.ProcessEnv): Promise<OpenedSources> {
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
    const path = defaultSocketPath();
    const reachable = defaultSocketReachable(path);
    if (reachable === true) {
      sources.push(createSocketSource(path));
    } else {
      note = `${reachable.why}: showing this machine's connections with the passive monitor`;
      if (reachable.denied) banner = `the agent at ${path} is for root and group ${AGENT_GROUP}; to join: sudo usermod -aG ${AGENT_GROUP} $USER, then log in again`;
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

/** True when the default socket exists and this user may connect to it; otherwise why not, in words.
 *  A running agent's socket is 0660 root:flowtop, so a user outside the group still gets the monitor. */
function defaultSocketReachable(path: string): true | { why: string; denied: boolean } {
  if (!existsSync(path)) return { why: `no extension socket at ${path}`, denied: false };
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return { why: `the agent's socket ${path} is for root and the ${AGENT_GROUP} group (sudo usermod -aG ${AGENT_GROUP} $USER, then log in again)`, denied: true };
  }
}
