// Composition: flow sources → table actions → the reducer in an RxJS `scan`, outside React.
// Flow tokens are handed to the attributor of the source's token kind; its answers come back as
// actions too. React only sees a throttled snapshot (auditTime) of the table.
import {
  Observable,
  Subject,
  audit,
  auditTime,
  buffer,
  filter,
  interval,
  map,
  merge,
  mergeMap,
  scan,
  share,
  startWith,
  timer,
  type Subscription,
} from 'rxjs';
import type { Attribution } from '../attribution/types.js';
import type { ClientMessage, TokenKind } from '../protocol/messages.js';
import type { FlowSource, SendResult, SourceEvent } from '../source/types.js';
import { initialTable, reduce, type TableAction } from '../state/reducer.js';
import type { AttributionUpdate, TableOptions, TableState } from '../state/types.js';

/** The part of the Attributor (src/attribution/attributor.ts) the app uses. */
export interface AttributorLike {
  request(tokenBase64: string): Attribution;
  readonly updates$: Observable<ReadonlyArray<{ key: string; attribution: Attribution }>>;
}

export interface Clock {
  now(): number;
}

export interface StoreOptions {
  sources: readonly FlowSource[];
  /** One attributor per token kind, created on first use. */
  attributorFor(kind: TokenKind): AttributorLike;
  clock: Clock;
  table?: Partial<TableOptions>;
  /** How long events are collected into one reducer step. */
  batchMs?: number;
  /** Snapshot period to the screen. */
  snapshotMs?: number;
  /** Snapshot period while a flood arrives (more than `floodPerSecond` messages in the last second):
   *  each frame costs the same however many rows changed, so fewer frames keep CPU for the stream. */
  floodSnapshotMs?: number;
  floodPerSecond?: number;
  tickMs?: number;
}

export interface FlowStore {
  /** Throttled table snapshots for the screen. */
  readonly snapshots$: Observable<TableState>;
  /** Every reducer step (for --jsonl and tests). */
  readonly states$: Observable<TableState>;
  current(): TableState;
  source(id: string): FlowSource | undefined;
  send(sourceId: string, message: ClientMessage): SendResult;
  close(): void;
}

export function createFlowStore(options: StoreOptions): FlowStore {
  const { clock } = options;
  const sources = new Map(options.sources.map((s) => [s.id, s]));
  const attributors = new Map<TokenKind, AttributorLike>();
  const kindOf = new Map<string, TokenKind>();
  const attributionUpdates = new Subject<TableAction>();
  const subscriptions: Subscription[] = [];

  const attributorFor = (kind: TokenKind): AttributorLike => {
    let a = attributors.get(kind);
    if (!a) {
      a = options.attributorFor(kind);
      attributors.set(kind, a);
      subscriptions.push(
        a.updates$.subscribe((updates) => attributionUpdates.next({ type: 'attributions', updates: updates.map((u): AttributionUpdate => ({ key: u.key, attribution: u.attribution })) })),
      );
    }
    return a;
  };

  /** A source event as actions: known attributions first (so the row is born resolved), then the event. */
  const toActions = (event: SourceEvent): TableAction[] => {
    const m = event.message;
    if (m.type === 'hello') kindOf.set(event.source, m.tokenKind);
    if (m.type !== 'flow') return [{ type: 'events', events: [event] }];
    const kind = kindOf.get(event.source);
    const known: AttributionUpdate[] = [];
    if (kind) {
      const attributor = attributorFor(kind);
      for (const token of [m.flow.token, m.flow.appToken]) {
        if (!token) continue;
        const a = attributor.request(token);
        if (a.trust !== 'pending') known.push({ key: token, attribution: a });
      }
    }
    return known.length > 0 ? [{ type: 'attributions', updates: known }, { type: 'events', events: [event] }] : [{ type: 'events', events: [event] }];
  };

  const input$ = merge(
    ...options.sources.map((s) => s.events$.pipe(mergeMap(toActions))),
    ...options.sources.map((s) =>
      s.status$.pipe(
        map((status): TableAction => {
          if (status.state === 'connected') kindOf.set(s.id, status.hello.tokenKind);
          return { type: 'status', source: s.id, status };
        }),
      ),
    ),
    attributionUpdates,
    interval(options.tickMs ?? 1000).pipe(map((): TableAction => ({ type: 'tick', now: clock.now() }))),
  ).pipe(share());

  let latest = initialTable(options.table, clock.now());
  const states$ = input$.pipe(
    // One reducer step per burst: collect what arrives within batchMs, then apply it at once.
    buffer(input$.pipe(auditTime(options.batchMs ?? 30))),
    filter((actions) => actions.length > 0),
    scan((state, actions) => reduce(state, { type: 'batch', actions: [...actions, { type: 'tick', now: clock.now() }] }), latest),
    share(),
  );
  const snapshots = new Subject<TableState>();
  subscriptions.push(
    states$.subscribe((s) => {
      latest = s;
      snapshots.next(s);
    }),
  );
  const calm = options.snapshotMs ?? 100;
  const flood = Math.max(options.floodSnapshotMs ?? 250, calm);
  const floodLimit = options.floodPerSecond ?? 2_000;
  let window = { start: clock.now(), count: 0, last: 0 };
  const flooded = () => {
    const now = clock.now();
    if (now - window.start >= 1_000) window = { start: now, count: 0, last: window.count };
    return Math.max(window.count, window.last) > floodLimit;
  };
  subscriptions.push(input$.subscribe(() => window.count++));
  const snapshots$ = snapshots.pipe(
    audit(() => timer(flooded() ? flood : calm)),
    startWith(latest),
    map(() => latest),
  );

  return {
    snapshots$,
    states$: snapshots.asObservable(),
    current: () => latest,
    source: (id) => sources.get(id),
    send(sourceId, message) {
      const source = sources.get(sourceId);
      if (!source) return { ok: false, error: `no source ${sourceId}` };
      return source.send(message);
    },
    close() {
      for (const s of subscriptions) s.unsubscribe();
      for (const s of options.sources) s.close();
    },
  };
}
