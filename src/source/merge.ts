// Several flow sources as one stream (e.g. `--socket a --socket b`, and a fleet whose hosts appear
// while it runs). Every event keeps the id of the source it came from, so flows with the same id on
// two extensions stay apart, and verdicts go back to the extension that asked. Sources may be added
// at any time: a subscriber to events$ or statuses$ gets every source's, those added later included.
import { ReplaySubject, map, mergeMap, scan, type Observable } from 'rxjs';
import type { ClientMessage } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from './types.js';

export interface SourceStatus {
  source: string;
  status: ConnectionStatus;
}

export interface MergedSources {
  /** The sources so far, in the order they were added. */
  readonly sources: readonly FlowSource[];
  /** Every source: those added so far, then each one as it is added. */
  readonly added$: Observable<FlowSource>;
  readonly events$: Observable<SourceEvent>;
  /** The status of every source, in the order added, each time one changes. */
  readonly statuses$: Observable<SourceStatus[]>;
  /** Adds a source (its id must be new). */
  add(source: FlowSource): void;
  /** Adds each source `from` yields, until closed (a refused one is reported through `onRefused`). */
  addFrom(from: Observable<FlowSource>, onRefused?: (error: Error) => void): void;
  get(id: string): FlowSource | undefined;
  /** Sends to the source with this id. */
  send(source: string, message: ClientMessage): SendResult;
  close(): void;
}

export function mergeSources(initial: readonly FlowSource[] = []): MergedSources {
  const byId = new Map<string, FlowSource>();
  const list: FlowSource[] = [];
  const added = new ReplaySubject<FlowSource>();
  const feeds: Array<{ unsubscribe(): void }> = [];
  let closed = false;
  const add = (source: FlowSource): void => {
    if (byId.has(source.id)) throw new Error(`two flow sources share the id "${source.id}"; each needs its own`);
    byId.set(source.id, source);
    list.push(source);
    added.next(source);
  };
  for (const s of initial) add(s);
  const order = (id: string): number => list.findIndex((s) => s.id === id);
  return {
    get sources() {
      return list;
    },
    added$: added.asObservable(),
    events$: added.pipe(mergeMap((s) => s.events$)),
    statuses$: added.pipe(
      mergeMap((s) => s.status$.pipe(map((status): SourceStatus => ({ source: s.id, status })))),
      scan((all, one) => {
        const next = new Map(all);
        next.set(one.source, one);
        return next;
      }, new Map<string, SourceStatus>()),
      map((all) => [...all.values()].sort((a, b) => order(a.source) - order(b.source))),
    ),
    add,
    addFrom(from, onRefused) {
      feeds.push(
        from.subscribe((s) => {
          if (closed) return s.close();
          try {
            add(s);
          } catch (error) {
            onRefused?.(error as Error);
            s.close();
          }
        }),
      );
    },
    get: (id) => byId.get(id),
    send(source, message) {
      const target = byId.get(source);
      return target ? target.send(message) : { ok: false, error: `no source "${source}"` };
    },
    close() {
      if (closed) return;
      closed = true;
      for (const f of feeds) f.unsubscribe();
      for (const s of list) s.close();
      added.complete();
    },
  };
}

/** A merge of the given sources or an existing one. */
export function asMerged(sources: readonly FlowSource[] | MergedSources): MergedSources {
  return Array.isArray(sources) ? mergeSources(sources as readonly FlowSource[]) : (sources as MergedSources);
}
