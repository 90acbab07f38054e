// What the recording is doing, for `flowtop agent --status`: built from the writer's notices on the
// thread that owns the recorder, so asking costs nothing.
import { statSync } from 'node:fs';
import type { WriterNotice } from './writer-core.js';

export interface HistoryStatus {
  /** The file (absent when recording is off). */
  path?: string;
  /** starting: the file is being opened; recording; failing: writes fail (a full disk) and flows are
   *  dropped until one succeeds; stopped: nothing more will be written (a refused or damaged file, a
   *  dead thread); off: --no-history, or no file could be prepared. */
  state: 'starting' | 'recording' | 'failing' | 'stopped' | 'off';
  /** Why it is failing, stopped or off; or the last side problem while recording (a prune). */
  reason?: string;
  /** When the state began (ms since the epoch). */
  since?: number;
  /** New flows written, and new flows not written (dropped while failing), since the agent started. */
  written: number;
  lost: number;
  lastWrite?: number;
  /** Open flows the recorder forgot among too many (their ends and bytes are not recorded). */
  forgotten: number;
  /** The file and its write-ahead log, in bytes, when they could be read. */
  bytes?: number;
}

/** Follows the writer's notices. */
export class HistoryState {
  private status: HistoryStatus;

  constructor(path: string, private readonly now: () => number = Date.now) {
    this.status = { path, state: 'starting', since: now(), written: 0, lost: 0, forgotten: 0 };
  }

  /** Nothing more will be written (the file was refused or damaged, the thread died). */
  get stopped(): boolean {
    return this.status.state === 'stopped';
  }

  /** Recording that never started: said with the reason. */
  static off(reason: string, path?: string): HistoryStatus {
    return { ...(path !== undefined ? { path } : {}), state: 'off', reason, written: 0, lost: 0, forgotten: 0 };
  }

  notice(n: WriterNotice): void {
    const s = this.status;
    switch (n.type) {
      case 'ready':
        this.enter('recording');
        break;
      case 'refused':
        this.enter('stopped', n.message);
        break;
      case 'problem':
        if (n.writing) this.enter('failing', n.message);
        else s.reason = n.message;
        break;
      case 'recovered':
        this.enter('recording');
        break;
      case 'progress':
        s.written = n.written;
        s.lost = n.lost;
        if (n.lastWrite !== undefined) s.lastWrite = n.lastWrite;
        break;
      case 'events':
        break;
    }
  }

  /** The status now, with the recorder's count of forgotten flows and the file's size. */
  read(forgotten: number): HistoryStatus {
    return { ...this.status, forgotten, ...(this.status.path !== undefined ? sizeOf(this.status.path) : {}) };
  }

  private enter(state: HistoryStatus['state'], reason?: string): void {
    if (this.status.state === 'stopped') return; // final
    const { reason: _old, ...rest } = this.status;
    this.status = { ...rest, state, since: this.now(), ...(reason !== undefined ? { reason } : {}) };
  }
}

function sizeOf(path: string): { bytes?: number } {
  let bytes = 0;
  for (const file of [path, `${path}-wal`]) {
    try {
      bytes += statSync(file).size;
    } catch {
      // Whatever stops the stat (not there yet, no permission), the size is simply not given.
      if (file === path) return {};
    }
  }
  return { bytes };
}

