// Recording history: the writer thread and the recorder that feeds it, opened and closed together.
// The agent and the TUI's passive monitor both start it here (see docs/history.md).
import type { Attribution } from '../attribution/types.js';
import type { HistoryEvent } from './batch.js';
import { HistoryRecorder } from './recorder.js';
import { openHistorySink } from './sink.js';
import type { RetentionOptions } from './writer.js';
import { HistoryState, type HistoryStatus } from './status.js';
import { claimRecording } from './recording-lock.js';

export { HistoryRecorder, type RecordedEvent } from './recorder.js';
export type { HistoryEvent } from './batch.js';
export { HistoryState, type HistoryStatus } from './status.js';
export { RecordingBusy } from './recording-lock.js';

export interface HistoryOptions extends RetentionOptions {
  path: string;
  /** Who records, named to a second recorder that finds the file taken ("flowtop agent"). */
  program: string;
  resolve?: (tokens: Uint8Array[]) => Promise<Attribution[]>;
  /** Problems and recoveries, in words (each problem once). */
  log: (line: string) => void;
  onEvent?: (event: HistoryEvent) => void;
  thread?: 'auto' | 'inline';
  flushMs?: number;
}

export interface RunningHistory {
  readonly recorder: HistoryRecorder;
  /** What the recording is doing (for the agent's status file). */
  status(): HistoryStatus;
  /** Sends what the recorder holds, waits for it to be written and closes the file; `beforeRelease`
   *  runs then, while this process still holds the file against another recorder. */
  close(beforeRelease?: () => void): Promise<void>;
}

/** Starts recording into `o.path`; throws RecordingBusy when another process records into it. */
export function startHistory(o: HistoryOptions): RunningHistory {
  const claim = claimRecording(o.path, o.program);
  try {
    const state = new HistoryState(o.path);
    const sink = openHistorySink(
      { path: o.path, ...(o.maxAgeMs !== undefined ? { maxAgeMs: o.maxAgeMs } : {}), ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}) },
      {
        thread: o.thread ?? 'auto',
        onNotice: (n) => {
          state.notice(n);
          if (n.type === 'refused') {
            o.log(`history: not recording: ${n.message}`);
          } else if (n.type === 'problem') {
            o.log(n.writing ? `history: cannot write (${n.message}); flows are not recorded meanwhile, retrying every 10 s` : `history: ${n.message}`);
          } else if (n.type === 'recovered') {
            o.log(`history: recording again (${n.lostFlows} flows were not recorded)`);
          } else if (n.type === 'events') {
            for (const e of n.events) o.onEvent?.(e);
          }
        },
      },
    );
    const recorder = new HistoryRecorder({
      write: (batch) => {
        if (!state.stopped) sink.write(batch);
      },
      ...(o.resolve ? { resolve: o.resolve } : {}),
      ...(o.flushMs !== undefined ? { flushMs: o.flushMs } : {}),
    });
    return {
      recorder,
      status: () => state.read(recorder.counts.forgotten),
      close: async (beforeRelease) => {
        recorder.close();
        await sink.close();
        try {
          beforeRelease?.();
        } finally {
          claim.release();
        }
      },
    };
  } catch (error) {
    claim.release();
    throw error;
  }
}
