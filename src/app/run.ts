// Runs the interactive app. All OS input arrives in one record (sources, attribution, clock,
// stdin/stdout), so tests run this same code against a test extension.
import { createElement } from 'react';
import { render } from 'ink';
import type { TokenKind } from '../protocol/messages.js';
import type { FlowSource } from '../source/types.js';
import type { MergedSources } from '../source/merge.js';
import type { TableOptions } from '../state/types.js';
import { Root } from './Root.js';
import type { UserNameLookup } from './users.js';
import { createBell } from './bell.js';
import type { HistorySource } from './history-source.js';
import { createFlowStore, type AttributorLike, type Clock, type FlowStore } from './store.js';
import { enterFullScreen } from './terminal.js';
import { setFastOutput } from '../ui/fast-output.js';
import { limitHeapGrowth } from './heap-growth.js';
import { collectYoungAfterFrame } from './idle-collect.js';

export interface AppIO {
  sources: readonly FlowSource[] | MergedSources;
  attributorFor(kind: TokenKind): AttributorLike;
  clock: Clock;
  /** The system's name for a uid (passwdUserNames() in production). */
  userName?: UserNameLookup;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export interface AppOptions {
  ascii: boolean;
  /** Ring the terminal bell for each new pending flow (default on; m toggles it in the app). */
  bell?: boolean;
  /** Also send an OSC 9 desktop notification naming the flow. */
  notify?: boolean;
  table?: Partial<TableOptions>;
  /** A standing line under the source lines (see RootProps.banner). */
  banner?: string;
  /** The history the history view shows and whose events ring the bell. */
  history?: HistorySource;
}

export function storeFor(io: AppIO, options: AppOptions): FlowStore {
  return createFlowStore({ sources: io.sources, attributorFor: io.attributorFor, clock: io.clock, table: options.table, userName: io.userName });
}

/** Resolves with the exit code when the person quits (or a signal / error ends the app). */
export async function runInteractive(io: AppIO, options: AppOptions): Promise<number> {
  // Process-wide choices for a process that holds one large table and draws it (see each module).
  limitHeapGrowth();
  await setFastOutput(true);
  return new Promise((resolve) => {
    const store = storeFor(io, options);
    let done = false;
    const finish = (code: number, error?: unknown) => {
      if (done) return;
      done = true;
      instance.unmount();
      store.close();
      terminal.restore();
      if (error !== undefined) io.stderr.write(`flowtop: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      resolve(code);
    };
    const terminal = enterFullScreen(io.stdout, (signal, error) => finish(signal === 'error' ? 1 : signal === 'SIGINT' ? 130 : 143, error));
    const alert = createBell({ write: (text) => void io.stdout.write(text), now: () => io.clock.now(), notify: options.notify ?? false });
    const instance = render(createElement(Root, { store, clock: io.clock, ascii: options.ascii, banner: options.banner, alert, alertEvents: (details: readonly string[]) => alert.events(details), history: options.history, bell: options.bell ?? true, onQuit: () => finish(0) }), {
      stdin: io.stdin,
      stdout: io.stdout,
      stderr: io.stderr,
      exitOnCtrlC: false,
      patchConsole: false,
      maxFps: 10,
      incrementalRendering: false,
      onRender: collectYoungAfterFrame,
    });
    instance.waitUntilExit().then(
      () => finish(0),
      (error: unknown) => finish(1, error),
    );
  });
}
