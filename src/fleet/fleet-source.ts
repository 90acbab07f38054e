// The client side of the fleet: one NATS connection that finds the hosts (the hosts bucket), reads
// their events (the stream, from `now − replay`, with an ordered consumer), asks each for a snapshot,
// reads the fleet rules (the rules bucket), and sends requests to each host. It yields flow sources:
// first the server's own (its link status and the fleet rules), then one per host as each appears,
// so every host is its own source in the table, with its own hello and rules.
import { BehaviorSubject, Observable, ReplaySubject, Subject } from 'rxjs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { decodeClientMessage, decodeExtensionMessage } from '../protocol/codec.js';
import type { ClientMessage, HelloMessage, Rule } from '../protocol/messages.js';
import type { ConnectionStatus, FlowSource, SendResult, SourceEvent } from '../source/types.js';
import type { FleetClientOptions } from './client-options.js';
import { FLEET_ID_PREFIX } from '../rules/fleet-layer.js';
import { decodeBody } from './body.js';
import { natsConnectionOptions } from './nats-connect.js';
import { DEFAULT_REQUEST_POLICY, HostSource, parseBatchId, type HostLink, type RequestPolicy } from './host-source.js';
import { ANNOUNCE_INTERVAL_MS, HOST_NAME_PATTERN, fleetNames, fleetRuleScope, type FleetNames, type HostAnnouncement } from './wire.js';

export interface FleetSourceOptions extends FleetClientOptions {
  /** The agents' announce interval; a host is gone after 3 without a refresh (tests shorten it). */
  announceIntervalMs?: number;
  request?: Partial<RequestPolicy>;
  /** How long to wait before connecting again, or looking again for a stream or bucket not there yet. */
  retryMs?: number;
  /** The socket of a flowtop agent on this machine that this client does not watch: it judges this
   *  client's own connection to the servers too, so a connection that fails says where to look. */
  localAgent?: string;
}

export interface FleetSource {
  /** The server's source first, then each host once, as it appears (replayed to a late subscriber). */
  readonly sources$: Observable<FlowSource>;
  /** Hosts known now. */
  hosts(): readonly HostSource[];
  close(): Promise<void>;
}

function words(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown } | null;
  const text = typeof e?.message === 'string' ? e.message : String(error);
  if (/ECONNREFUSED/.test(text)) return 'nothing is listening there';
  return text;
}

/** Said with a failed connect when an agent on this machine may be what holds it (waiting for a
 *  verdict nobody here can give) or refused it. */
function localAgentHint(options: FleetSourceOptions): string {
  if (options.localAgent === undefined) return '';
  return `; the flowtop agent on this machine may be holding it for a verdict or blocking it: add --socket ${options.localAgent} to see it and allow it`;
}

/** The announcement in a hosts-bucket entry, checked with the protocol's own hello decoder. */
export function readAnnouncement(key: string, value: Uint8Array): HostAnnouncement | string {
  if (!HOST_NAME_PATTERN.test(key)) return `a host entry with a bad name ${JSON.stringify(key.slice(0, 80))}`;
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch {
    return `host ${key}: its entry is not JSON`;
  }
  const a = o as { hello?: unknown; started?: unknown; seen?: unknown } | null;
  if (typeof a !== 'object' || a === null) return `host ${key}: its entry is not an object`;
  if (!Number.isSafeInteger(a.started) || !Number.isSafeInteger(a.seen)) return `host ${key}: its entry needs "started" and "seen" times in ms`;
  const decoded = decodeExtensionMessage(JSON.stringify(a.hello ?? null));
  if (!decoded.ok) return `host ${key}: its hello is not valid: ${decoded.error.message}`;
  if (decoded.message.type !== 'hello') return `host ${key}: its entry holds a "${decoded.message.type}" where a hello belongs`;
  return { hello: decoded.message as HelloMessage & { type: 'hello' }, started: a.started as number, seen: a.seen as number };
}

/** A fleet rule from the rules bucket: a whole rule, or a rule spec (then its id is the key). */
export function readFleetRule(key: string, value: Uint8Array, created: number): Rule | string {
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch {
    return `fleet rule ${key}: not JSON`;
  }
  const whole = decodeExtensionMessage(JSON.stringify({ type: 'rule-changed', op: 'added', rule: o }));
  // Named as the agents name it (src/rules/fleet-layer.ts): `fleet:<key>`.
  const id = `${FLEET_ID_PREFIX}${key}`;
  if (whole.ok && whole.message.type === 'rule-changed') return { ...whole.message.rule, id };
  const spec = decodeClientMessage(JSON.stringify({ type: 'rule-add', rule: o }));
  if (spec.ok && spec.message.type === 'rule-add') return { ...spec.message.rule, id, created, hits: 0, enabled: spec.message.rule.enabled ?? true };
  return `fleet rule ${key}: ${whole.ok ? 'not a rule' : whole.error.message}`;
}

/** The server's source: the link's status, and the fleet rules as this source's rules. */
class ServerSource implements FlowSource {
  readonly fleet: { role: 'server'; label: string };
  readonly events = new Subject<SourceEvent>();
  readonly status = new BehaviorSubject<ConnectionStatus>({ state: 'connecting', attempt: 1 });
  readonly events$ = this.events.asObservable();
  readonly status$ = this.status.asObservable();
  removeRule?: (key: string) => Promise<void>;

  constructor(readonly id: string) {
    this.fleet = { role: 'server', label: id };
  }

  send(message: ClientMessage): SendResult {
    if (message.type !== 'rule-remove') return { ok: false, error: 'fleet rules are added with `flowtop rules` or in the rules bucket; from here they can only be deleted' };
    if (!this.removeRule) return { ok: false, error: `not connected to ${this.id}` };
    this.removeRule(message.id).catch((error: unknown) =>
      this.events.next({ source: this.id, local: true, message: { type: 'error', code: 'internal', message: `could not delete fleet rule ${message.id}: ${words(error)}` } }),
    );
    return { ok: true };
  }

  close(): void {
    this.status.next({ state: 'disconnected', reason: 'closed' });
    this.events.complete();
    this.status.complete();
  }
}

export function openFleet(options: FleetSourceOptions): FleetSource {
  const names: FleetNames = fleetNames(options.link.prefix);
  const where = options.link.servers.join(',');
  const policy: RequestPolicy = { ...DEFAULT_REQUEST_POLICY, ...options.request };
  const interval = options.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS;
  const retryMs = options.retryMs ?? 2_000;
  const server = new ServerSource(where);
  const sources = new ReplaySubject<FlowSource>();
  const hosts = new Map<string, HostSource>();
  const lastSeen = new Map<string, number>();
  let nc: NatsConnection | undefined;
  /** The hosts bucket, once open: read directly before a host is called gone. */
  let hostsBucket: KV | undefined;
  let closed = false;
  let started = false;
  const stoppers: Array<() => Promise<unknown> | void> = [];

  const link: HostLink = {
    where,
    async request(host, body, timeoutMs) {
      if (!nc || nc.isClosed()) throw new Error(`not connected to ${where}`);
      try {
        const msg = await nc.request(names.request(host, options.user), body, { timeout: timeoutMs });
        return { body: msg.data, header: (name) => msg.headers?.get(name) || undefined };
      } catch (error) {
        const text = words(error);
        const cause = (error as { cause?: unknown }).cause;
        if (/no responders/i.test(text) || (cause instanceof Error && /no responders/i.test(cause.message))) throw new Error(`no agent answers for ${host} (it is not connected to NATS)`);
        if (/timeout/i.test(text)) throw new Error(`no answer within ${timeoutMs} ms`);
        throw new Error(text);
      }
    },
  };

  const say = (text: string, code: 'internal' | 'bad-message' = 'internal'): void => {
    server.events.next({ source: server.id, local: true, message: { type: 'error', code, message: text } });
  };

  const hostFor = (name: string): HostSource => {
    let h = hosts.get(name);
    if (!h) {
      h = new HostSource(name, link, policy);
      hosts.set(name, h);
      sources.next(h);
    }
    return h;
  };

  const retryWait = (): Promise<void> => new Promise((r) => setTimeout(r, retryMs));

  async function watchHosts(conn: NatsConnection): Promise<void> {
    while (!closed) {
      try {
        const kv = await new Kvm(conn).open(names.hostsBucket);
        hostsBucket = kv;
        const watch = await kv.watch();
        stoppers.push(() => watch.stop());
        for await (const entry of watch as AsyncIterable<KvWatchEntry>) {
          if (closed) return;
          if (entry.operation !== 'PUT') {
            hosts.get(entry.key)?.markGone('its agent said goodbye (entry removed)');
            continue;
          }
          const a = readAnnouncement(entry.key, entry.value);
          if (typeof a === 'string') {
            say(`skipped ${a}`, 'bad-message');
            continue;
          }
          heardFrom(entry.key, a, entry.created.getTime());
        }
        return;
      } catch (error) {
        if (closed) return;
        say(`hosts bucket ${names.hostsBucket}: ${words(error)} (no agent has announced itself yet?); looking again`);
        await retryWait();
      }
    }
  }

  /** Ends `messages` (and so its reading loop, which makes the consumer again) once the library's
   *  own recovery is failing: 10 s without a message or any word from the consumer (it hears a
   *  heartbeat every 2.5 s when idle), heartbeats missed 3 times, the stream not found, no JetStream
   *  answering. After a cluster node died, an ordered consumer was seen silent for 25–30 s, with no
   *  error, while it retried on its own. */
  function endWhenStuck(messages: ConsumerMessages, conn: NatsConnection): { heard(): void } {
    let lastHeard = Date.now();
    let ended = false;
    const end = (): void => {
      if (ended || closed) return;
      ended = true;
      clearInterval(timer);
      void messages.close().catch(() => undefined);
    };
    const timer = setInterval(() => {
      if (ended || closed || conn.isClosed()) return clearInterval(timer);
      if (Date.now() - lastHeard > 10_000) end();
    }, 1_000);
    timer.unref?.();
    void (async () => {
      try {
        for await (const s of messages.status()) {
          lastHeard = Date.now();
          if ((s.type === 'heartbeats_missed' && s.count >= 3) || s.type === 'stream_not_found' || s.type === 'no_responders' || s.type === 'consumer_deleted') end();
        }
      } catch {
        // the messages closed meanwhile
      }
      clearInterval(timer);
    })();
    return { heard: () => (lastHeard = Date.now()) };
  }

  async function readEvents(conn: NatsConnection): Promise<void> {
    const js = jetstream(conn);
    while (!closed) {
      let messages: ConsumerMessages | undefined;
      try {
        const since = new Date(Date.now() - options.replayMs).toISOString();
        const consumer = await js.consumers.get(names.stream, {
          filter_subjects: names.allEvents,
          ...(options.replayMs > 0 ? { deliver_policy: 'by_start_time' as const, opt_start_time: since } : { deliver_policy: 'new' as const }),
        });
        // Pull requests that expire after 5 s (heartbeats every 2.5 s) instead of the library's 30 s: a
        // consumer left on a cluster node that died is noticed, and made again on another node, within
        // seconds rather than a minute.
        messages = await consumer.consume({ expires: 5_000 });
        const m = messages;
        stoppers.push(() => m.close());
        const watch = endWhenStuck(m, conn);
        const hostAt = names.events('x').split('.').length - 1;
        for await (const msg of messages) {
          if (closed) return;
          watch.heard();
          const host = msg.subject.split('.')[hostAt] ?? '';
          if (!HOST_NAME_PATTERN.test(host)) continue;
          const idText = msg.headers?.get('Nats-Msg-Id');
          const idMatch = idText ? /^([A-Za-z0-9_-]{1,64})\.(\d+\.\d+)$/.exec(idText) : null;
          const id = idMatch && idMatch[1] === host ? parseBatchId(idMatch[2]) : undefined;
          const { messages: decoded, problems } = decodeBody(msg.data);
          hostFor(host).batch({ ...(id ? { id } : {}), messages: decoded, problems });
        }
        if (closed) return;
        // The consumer ended without an error (its node went away and it could not be made again
        // there): reading stops for good unless it is made again, from where it was.
        await messages.close().catch(() => undefined);
        await retryWait();
      } catch (error) {
        if (closed) return;
        say(`events stream ${names.stream}: ${words(error)} (no agent has published yet?); reading again`);
        await messages?.close().catch(() => undefined);
        await retryWait();
      }
    }
  }

  async function watchRules(conn: NatsConnection): Promise<void> {
    while (!closed) {
      try {
        const kv = await new Kvm(conn).open(names.rulesBucket);
        server.removeRule = async (id) => {
          await kv.delete(id.startsWith(FLEET_ID_PREFIX) ? id.slice(FLEET_ID_PREFIX.length) : id);
        };
        const watch = await kv.watch();
        stoppers.push(() => watch.stop());
        const known = new Map<string, Rule>();
        for await (const entry of watch as AsyncIterable<KvWatchEntry>) {
          if (closed) return;
          if (!fleetRuleScope(entry.key)) {
            say(`skipped fleet rule ${JSON.stringify(entry.key.slice(0, 80))}: keys are all.<id> or host.<host>.<id>`, 'bad-message');
            continue;
          }
          if (entry.operation !== 'PUT') {
            const old = known.get(entry.key);
            known.delete(entry.key);
            if (old) server.events.next({ source: server.id, message: { type: 'rule-changed', op: 'removed', rule: old } });
            continue;
          }
          const rule = readFleetRule(entry.key, entry.value, entry.created.getTime());
          if (typeof rule === 'string') {
            say(`skipped ${rule}`, 'bad-message');
            continue;
          }
          const op = known.has(entry.key) ? 'updated' : 'added';
          known.set(entry.key, rule);
          server.events.next({ source: server.id, message: { type: 'rule-changed', op, rule } });
        }
        return;
      } catch (error) {
        if (closed) return;
        // No rules bucket is no fleet rules yet: said once, looked for again quietly.
        if (!/not found/i.test(words(error))) say(`rules bucket ${names.rulesBucket}: ${words(error)}; looking again`);
        await retryWait();
      }
    }
  }

  const since = (at: number): string => `not heard from since ${new Date(at).toISOString().slice(11, 19)} UTC`;

  /** A host's entry as the bucket held it at `at` (the server's time of the write). An entry older
   *  than one already seen (a watch made again after a failover replays from where it was) changes
   *  nothing. */
  function heardFrom(name: string, a: HostAnnouncement, at: number): void {
    if (at < (lastSeen.get(name) ?? -Infinity)) return;
    lastSeen.set(name, at);
    if (Date.now() - at > 3 * interval) hostFor(name).markGone(since(at));
    else hostFor(name).announce(a);
  }

  /** A host whose entry this client has not seen refreshed for 3 intervals is gone, once the bucket
   *  itself says so: the watch is this client's view, and after its server died it was seen to lag
   *  the bucket for 6–23 s while it was made again on another one (the host announcing all along).
   *  So the entry is read directly (any replica answers), and a fresh one counts as heard. While it
   *  cannot be read (the cluster is moving leaders, or this client lost its link) the host is given
   *  3 intervals more, then called gone, saying why. */
  async function confirmGone(name: string, at: number): Promise<void> {
    const why = `${since(at)} (agents refresh every ${interval < 1000 ? `${interval} ms` : `${Math.round(interval / 1000)} s`})`;
    let entry: Awaited<ReturnType<KV['get']>>;
    try {
      if (!hostsBucket) throw new Error('the hosts bucket is not open');
      entry = await hostsBucket.get(name);
    } catch (error) {
      if (!closed && Date.now() - at > 6 * interval) hosts.get(name)?.markGone(`${why}; the hosts bucket could not be read to check: ${words(error)}`);
      return;
    }
    if (closed) return;
    if (!entry || entry.operation !== 'PUT') return hosts.get(name)?.markGone('its agent said goodbye (entry removed)');
    const a = readAnnouncement(name, entry.value);
    if (typeof a === 'string') return hosts.get(name)?.markGone(`${why}; its entry now: ${a}`);
    const written = entry.created.getTime();
    if (Date.now() - written > 3 * interval) return hosts.get(name)?.markGone(why);
    heardFrom(name, a, written);
  }

  /** Hosts that stopped refreshing their entry for 3 intervals are checked (one check at a time each). */
  const checking = new Set<string>();
  const staleness = setInterval(() => {
    const now = Date.now();
    for (const [name, at] of lastSeen) {
      if (now - at <= 3 * interval || checking.has(name) || hosts.get(name)?.isGone() !== false) continue;
      checking.add(name);
      void confirmGone(name, at).finally(() => checking.delete(name));
    }
  }, Math.min(1_000, interval));
  staleness.unref?.();

  async function watchLink(conn: NatsConnection): Promise<void> {
    for await (const s of conn.status()) {
      if (closed) return;
      if (s.type === 'disconnect') server.status.next({ state: 'reconnecting', reason: `lost ${s.server}`, retryAt: Date.now() + 1_000, attempt: 1 });
      if (s.type === 'reconnect') server.status.next({ state: 'connected' });
    }
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!closed) {
      attempt++;
      try {
        // Its own retry loop (below) stands in for waitOnFirstConnect; 20 s for a TLS handshake far away.
        nc = await connect(natsConnectionOptions(options.link, 'flowtop client', { timeoutMs: 20_000, eager: false }));
      } catch (error) {
        if (closed) return;
        server.status.next({ state: 'reconnecting', reason: words(error) + localAgentHint(options), retryAt: Date.now() + retryMs, attempt: attempt + 1 });
        await retryWait();
        continue;
      }
      if (closed) {
        await nc.close();
        return;
      }
      server.status.next({ state: 'connected' });
      const conn = nc;
      void watchLink(conn);
      await Promise.all([watchHosts(conn), readEvents(conn), watchRules(conn)]);
      const why = await conn.closed();
      if (closed) return;
      server.status.next({ state: 'reconnecting', reason: why ? words(why) : 'the connection closed', retryAt: Date.now() + retryMs, attempt: 1 });
      await retryWait();
    }
  }

  return {
    // The connection starts with the first subscriber, so every source it yields has a subscriber
    // before any of its events.
    sources$: new Observable<FlowSource>((subscriber) => {
      const sub = sources.subscribe(subscriber);
      if (!started) {
        started = true;
        sources.next(server);
        void run().catch((error: unknown) => server.status.next({ state: 'disconnected', reason: `stopped: ${words(error)}` }));
      }
      return () => sub.unsubscribe();
    }),
    hosts: () => [...hosts.values()],
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(staleness);
      for (const stop of stoppers) await Promise.resolve(stop()).catch(() => undefined);
      await nc?.close().catch(() => undefined);
      for (const h of hosts.values()) h.close();
      server.close();
      sources.complete();
    },
  };
}
