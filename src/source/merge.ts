// Several flow sources as one stream (e.g. `--socket a --socket b`). Every event keeps the id of the
// source it came from, so flows with the same id on two extensions stay apart, and verdicts go back
// to the extension that asked.
import { combineLatest, map, merge, type Observable } from 'rxjs';
import type { ClientMessage } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from './types.js';

export interface SourceStatus {
  source: string;
  status: ConnectionStatus;
}

export interface MergedSources {
  readonly sources: readonly FlowSource[];
  readonly events$: Observable<SourceEvent>;
  /** The status of every source, in the order given, each time one changes. */
  readonly statuses$: Observable<SourceStatus[]>;
  /** Sends to the source with this id. */
  send(source: string, message: ClientMessage): SendResult;
  close(): void;
}

export function mergeSources(sources: readonly FlowSource[]): MergedSources {
  const byId = new Map<string, FlowSource>();
  for (const s of sources) {
    if (byId.has(s.id)) throw new Error(`two flow sources share the id "${s.id}"; each needs its own`);
    byId.set(s.id, s);
  }
  return {
    sources,
    events$: merge(...sources.map((s) => s.events$)),
    statuses$: combineLatest(sources.map((s) => s.status$.pipe(map((status): SourceStatus => ({ source: s.id, status }))))),
    send(source, message) {
      const target = byId.get(source);
      return target ? target.send(message) : { ok: false, error: `no source "${source}"` };
    },
    close() {
      for (const s of sources) s.close();
    },
  };
}
