// Composition: flow sources → table actions → the reducer, run in bounded slices outside React.
// Flow tokens are handed to the attributor of the source's token kind; its answers come back as
// actions too. React only sees a throttled snapshot (auditTime) of the table.
import {
  Observable,
  Subject,
  audit,
  interval,
  map,
  merge,
  mergeMap,
  of,
  share,
  startWith,
  timer,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import type { Attribution } from '../attribution/types.js';
import type { ClientMessage, TokenKind } from '../protocol/messages.js';
import type { FlowSource, SendResult, SourceEvent } from '../source/types.js';
import { asMerged, type MergedSources } from '../source/merge.js';
import { initialTable, type TableAction } from '../state/reducer.js';
import { reduceInSlices } from './sliced-reducer.js';
import type { AttributionUpdate, TableOptions, TableState } from '../state/types.js';
import { namingUsers, type UserNameLookup } from './users.js';

/** The part of the Attributor (src/attribution/attributor.ts) the app uses. */
export interface AttributorLike {
  request(tokenBase64: string): Attribution;
  readonly updates$: Observable<ReadonlyArray<{ key: string; attribution: Attribution }>>;
}

export interface Clock {
  now(): number;
}

export interface StoreOptions {
  /** The sources, or a merge that more may join later (a fleet's hosts). */
  sources: readonly FlowSource[] | MergedSources;
  /** One attributor per token kind, created on first use. */
  attributorFor(kind: TokenKind): AttributorLike;
  clock: Clock;
  table?: Partial<TableOptions>;
  /** The system's name for a uid (default: none; the app passes passwdUserNames()). */
  userName?: UserNameLookup;
  /** How long events are collected into one reducer step. */
  batchMs?: number;
  /** Most time one turn of the event loop spends reducing a backlog before it yields. */
  sliceMs?: number;
  /** Snapshot period to the screen. */
  snapshotMs?: number;
  /** Snapshot period while a flood arrives (more than `floodPerSecond` messages in the last second):
   *  each frame costs the same however many rows changed, so fewer frames keep CPU for the stream. */
  floodSnapshotMs?: number;
  floodPerSecond?: number;
  tickMs?: number;
  /** Where the batch wait, the snapshot throttle and the tick run: real timers by default, a
   *  TestScheduler's virtual time in tests. Give `clock` the same time. */
  scheduler?: SchedulerLike;
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
  const { clock, scheduler } = options;
  const sources = asMerged(options.sources);
  const attributors = new Map<TokenKind, AttributorLike>();
  const kindOf = new Map<string, TokenKind>();
  const remote = new Set<string>();
  const attributionUpdates = new Subject<TableAction>();
  const subscriptions: Subscription[] = [];
  const named = options.userName ? namingUsers(options.userName) : (a: Attribution) => a;

  const attributorFor = (kind: TokenKind): AttributorLike => {
    let a = attributors.get(kind);
    if (!a) {
      a = options.attributorFor(kind);
      attributors.set(kind, a);
      subscriptions.push(
        a.updates$.subscribe((updates) => attributionUpdates.next({ type: 'attributions', updates: updates.map((u): AttributionUpdate => ({ key: u.key, attribution: named(u.attribution) })) })),
      );
    }
    return a;
  };

  const known = (attributor: AttributorLike, token: string | undefined): AttributionUpdate | undefined => {
    if (!token) return undefined;
    const a = attributor.request(token);
    return a.trust !== 'pending' ? { key: token, attribution: named(a) } : undefined;
  };

  /** A source event as actions, in order: known attributions first (so the row is born resolved),
   *  then the event. */
  const emitActions = (event: SourceEvent, next: (action: TableAction) => void): void => {
    const m = event.message;
    if (m.type === 'hello') kindOf.set(event.source, m.tokenKind);
    if (m.type === 'flow' && !remote.has(event.source)) {
      const kind = kindOf.get(event.source);
      if (kind) {
        const attributor = attributorFor(kind);
        const own = known(attributor, m.flow.token);
        const app = known(attributor, m.flow.appToken);
        if (own || app) next({ type: 'attributions', updates: own && app ? [own, app] : [(own ?? app)!] });
      }
    }
    next({ type: 'events', events: [event] });
  };

  /** Each source's events as actions, emitted directly: through mergeMap every event had its own
   *  inner subscription, most of this path's garbage at 10,000 events/s (and, held in the batch
   *  buffer, some of it lived long enough to be promoted). */
  const actionsOf = (events$: Observable<SourceEvent>): Observable<TableAction> =>
    new Observable<TableAction>((subscriber) => {
      const next = (action: TableAction): void => subscriber.next(action);
      return events$.subscribe({
        next: (event) => emitActions(event, next),
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      });
    });

  // Each source as it joins: what kind it is (a fleet host's flows are attributed by its agent, never
  // resolved here), then its events and statuses.
  const sourceActions = (s: FlowSource): Observable<TableAction> => {
    if (s.fleet?.role === 'host') remote.add(s.id);
    return merge(
      s.fleet ? of<TableAction>({ type: 'source', source: s.id, fleet: s.fleet }) : of<TableAction>(),
      actionsOf(s.events$),
      s.status$.pipe(
        map((status): TableAction => {
          if (status.state === 'connected' && status.hello) kindOf.set(s.id, status.hello.tokenKind);
          return { type: 'status', source: s.id, status };
        }),
      ),
    );
  };

  const input$ = merge(
    sources.added$.pipe(mergeMap(sourceActions)),
    attributionUpdates,
    interval(options.tickMs ?? 1000, scheduler).pipe(map((): TableAction => ({ type: 'tick', now: clock.now() }))),
  ).pipe(share());

  let latest = initialTable({ ...options.table, ...(options.userName ? { userName: options.userName } : {}) }, clock.now());
  // One reducer step per burst (what arrives within batchMs), in slices that never hold the event
  // loop for long (see sliced-reducer.ts).
  // The answer to a key press is applied at once; the stream waits for its batch.
  const urgent = (a: TableAction): boolean => a.type === 'events' && a.events.some((e) => e.reply === true);
  const states$ = reduceInSlices(input$, latest, { batchMs: options.batchMs ?? 30, sliceMs: options.sliceMs ?? 20, chunk: 5_000, now: () => clock.now(), scheduler, urgent }).pipe(share());
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
    audit(() => timer(flooded() ? flood : calm, scheduler)),
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
      sources.close();
    },
  };
}
