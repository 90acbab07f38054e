// The agent's NATS link, on its own thread, so nothing NATS does (connecting, TLS, waiting on acks, a
// slow or absent server) can slow the thread that answers packets. It publishes the events the main
// thread hands over into the JetStream stream (creating or updating it), keeps a bounded backlog while
// the server cannot take them (the oldest dropped and counted past the bound), announces the host in
// the hosts bucket, carries requests to the main thread and their replies back, and watches the fleet
// rules for this host. It never decides anything: the main thread does, with or without this link.
import { parentPort, workerData } from 'node:worker_threads';
import { headers, nanos, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import { connectNats } from './nats-connect.js';
import { ANNOUNCE_INTERVAL_MS, MAX_BODY_BYTES, fleetNames, type FleetNames } from './wire.js';
import type { FleetLinkStatus, LinkToMain, LinkWorkerData, MainToLink } from './link-types.js';
import { nameThisThread } from '../native/thread-name.js';

const data = workerData as LinkWorkerData;
nameThisThread('flowtop-nats');
const names: FleetNames = fleetNames(data.config.prefix);
const post = (m: LinkToMain): void => parentPort!.postMessage(m);
const log = (message: string): void => post({ type: 'log', message });
/** A request the main thread has not answered in this long is answered with an error here. */
const REPLY_TIMEOUT_MS = 10_000;
const PUBLISH_TIMEOUT_MS = 3_000;
const SETUP_RETRY_MS = 2_000;
/** Test-only, inert unless set (never in production): FLOWTOP_TEST_LINK_THREAD_FAULT=crash:N makes each
 *  of the agent's first N link threads throw, uncaught, right after its first acknowledged publish;
 *  hang:N makes it block there for good instead. A test then watches the main thread start another
 *  (test/fleet/link-restart.test.ts). Nothing that comes from NATS or the main thread is known to crash
 *  or hang this thread; this stands in for a bug. */
const testFault = /^(crash|hang):(\d{1,6})$/.exec(process.env['FLOWTOP_TEST_LINK_THREAD_FAULT'] ?? '');
const faultAfterFirstPublish = testFault && data.thread < Number(testFault[2]) ? (testFault[1] as 'crash' | 'hang') : undefined;

interface Chunk {
  lines: string;
  count: number;
  bytes: number;
  /** The main thread's batch number: the body's Nats-Msg-Id is <host>.<start>.<seq>. */
  seq: number;
}

interface Sealed {
  body: Uint8Array;
  count: number;
  id: string;
  seq: number;
}

const status: FleetLinkStatus = { state: 'connecting', backlogEvents: 0, backlogBytes: 0, published: 0, dropped: 0, requests: 0 };
/** The last batch the stream acknowledged (batches are published in order; those dropped from a full
 *  backlog are older): the main thread keeps every later one for a thread started after this one dies. */
let publishedSeq = 0;
const postStatus = (): void => post({ type: 'status', status, publishedSeq });
const backlog: Chunk[] = [];
/** The body being published: kept (with its id) until the stream acknowledges it, so a retry is
 *  stored once (the stream's duplicate window drops a second copy with the same Nats-Msg-Id). */
let sealed: Sealed | undefined;
let nc: NatsConnection | undefined;
let js: JetStreamClient | undefined;
let connected = false;
let stopping = false;
let hello: string | undefined;
let hostsKv: KV | undefined;
let stopWatch: (() => void) | undefined;
let wake: () => void = () => {};
/** Counts connects: setup steps of an earlier connection stop retrying. */
let connectGeneration = 0;
let nextRequestId = 1;
const waitingReplies = new Map<number, { msg: Msg; timer: NodeJS.Timeout }>();

function setProblem(problem: string | undefined): void {
  if (problem === status.problem) return;
  if (problem !== undefined) log(`NATS: ${problem}`);
  if (problem === undefined) delete status.problem;
  else status.problem = problem;
}

// ---- the backlog ----

function take(m: Extract<MainToLink, { type: 'events' }>): void {
  // One batch, one body (the main thread keeps each under MAX_BODY_BYTES): a snapshot reply names the
  // last batch by its seq (docs/fleet.md, Flowtop-Last-Batch).
  push({ lines: m.lines, count: m.count, bytes: Buffer.byteLength(m.lines), seq: m.seq });
  trim();
  wake();
}

function push(c: Chunk): void {
  backlog.push(c);
  status.backlogEvents += c.count;
  status.backlogBytes += c.bytes;
}

/** Past the bound the oldest events go: counted, and said once per outage. */
function trim(): void {
  let droppedNow = 0;
  while (status.backlogBytes > data.backlogBytes && backlog.length > 1) {
    const old = backlog.shift()!;
    status.backlogEvents -= old.count;
    status.backlogBytes -= old.bytes;
    status.dropped += old.count;
    droppedNow += old.count;
  }
  if (droppedNow > 0 && status.dropped === droppedNow) log(`NATS: the backlog is full (${data.backlogBytes} bytes): dropping the oldest events (counted in --status)`);
}

function seal(): Sealed | undefined {
  const c = backlog.shift();
  if (!c) return undefined;
  status.backlogEvents -= c.count;
  status.backlogBytes -= c.bytes;
  return { body: new TextEncoder().encode(c.lines), count: c.count, id: `${data.host}.${data.started}.${c.seq}`, seq: c.seq };
}

async function pump(): Promise<void> {
  const subject = names.events(data.host);
  while (!stopping) {
    if (!connected || !js || (sealed === undefined && backlog.length === 0)) {
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    sealed ??= seal();
    if (!sealed) continue;
    try {
      const h = headers();
      h.set('Nats-Msg-Id', sealed.id);
      const ack = await js.publish(subject, sealed.body, { msgID: sealed.id, headers: h, timeout: PUBLISH_TIMEOUT_MS });
      // A duplicate: a thread before this one stored it and died before saying so.
      if (!ack.duplicate) status.published += sealed.count;
      publishedSeq = sealed.seq;
      sealed = undefined;
      if (faultAfterFirstPublish === 'crash') {
        postStatus();
        setImmediate(() => {
          throw new Error(`link thread ${data.thread} crashed on purpose (FLOWTOP_TEST_LINK_THREAD_FAULT)`);
        });
        return;
      }
      if (faultAfterFirstPublish === 'hang') {
        postStatus();
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      }
      if (status.problem?.startsWith('publishing')) setProblem(undefined);
    } catch (error) {
      setProblem(`publishing to ${subject}: ${messageOf(error)}`);
      await sleep(500);
    }
  }
}

// ---- the connection ----

async function ensureStream(conn: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(conn);
  const maxAge = nanos(data.maxAgeMs);
  try {
    const info = await jsm.streams.info(names.stream);
    const subjects = info.config.subjects ?? [];
    if (info.config.max_age !== maxAge || !subjects.includes(names.allEvents)) {
      await jsm.streams.update(names.stream, { ...info.config, max_age: maxAge, subjects: subjects.includes(names.allEvents) ? subjects : [...subjects, names.allEvents] });
      log(`NATS: stream ${names.stream} updated (max age ${data.maxAgeMs / 1000} s)`);
    }
  } catch (error) {
    if (!/not found/i.test(messageOf(error))) throw error;
    await replicated((num_replicas) => jsm.streams.add({ name: names.stream, subjects: [names.allEvents], max_age: maxAge, duplicate_window: nanos(120_000), num_replicas }));
    log(`NATS: stream ${names.stream} created (max age ${data.maxAgeMs / 1000} s)`);
  }
}

/** Everything that follows a (re)connect: the stream, the buckets, the rules watch. Each part that
 *  fails (JetStream still electing its leader, a permission refused) is said in --status and tried
 *  again every SETUP_RETRY_MS while connected; publishing is retried by the pump either way. */
async function afterConnect(conn: NatsConnection): Promise<void> {
  const generation = ++connectGeneration;
  status.state = 'connected';
  status.server = conn.info?.server_name ?? conn.getServer();
  connected = true;
  js = jetstream(conn);
  wake();
  const kvm = new Kvm(conn);
  const steps: Array<[string, () => Promise<void>]> = [
    [`stream ${names.stream}`, () => ensureStream(conn)],
    [`hosts bucket ${names.hostsBucket}`, async () => {
      hostsKv = await replicated((replicas) => kvm.create(names.hostsBucket, { history: 1, replicas }));
      await announce();
    }],
    [`rules bucket ${names.rulesBucket}`, async () => watchRules(await replicated((replicas) => kvm.create(names.rulesBucket, { history: 5, replicas })))],
  ];
  for (const [what, step] of steps) {
    for (;;) {
      if (stopping || !connected || generation !== connectGeneration) return;
      try {
        await step();
        if (status.problem?.startsWith(what)) setProblem(undefined);
        break;
      } catch (error) {
        setProblem(`${what}: ${messageOf(error)}`);
        await sleep(SETUP_RETRY_MS);
      }
    }
  }
}

/** Created with three replicas where the cluster has room for them (a node may die), else one. */
async function replicated<T>(create: (replicas: number) => Promise<T>): Promise<T> {
  try {
    return await create(3);
  } catch (error) {
    if (!/insufficient resources|replicas|peers|not enough/i.test(messageOf(error))) throw error;
    return create(1);
  }
}

async function announce(): Promise<void> {
  if (!connected || !hostsKv || hello === undefined) return;
  const now = Date.now();
  await hostsKv.put(data.host, `{"hello":${hello},"started":${data.started},"seen":${now}}`);
  status.announced = now;
}

/** The whole set first (after every connect: a rule deleted while the link was down is gone from it),
 *  then each change. The watch starts before the read, so no change falls between them. */
async function watchRules(kv: KV): Promise<void> {
  stopWatch?.();
  // One filter for every key, kept or skipped here: servers before 2.10 take one filter subject only.
  const mine = (key: string): boolean => key.startsWith('all.') || key.startsWith(`host.${data.host}.`);
  const watch = await kv.watch({ key: '>', include: KvWatchInclude.UpdatesOnly });
  let stopped = false;
  stopWatch = () => {
    stopped = true;
    watch.stop();
  };
  const held: Array<{ key: string; value?: string; revision: number }> = [];
  let snapshotDone = false;
  const seen = new Map<string, number>();
  void (async () => {
    for await (const e of watch) {
      if (stopped) break;
      if (!mine(e.key)) continue;
      const change = { key: e.key, revision: e.revision, ...(e.operation === 'PUT' ? { value: e.string() } : {}) };
      if (!snapshotDone) held.push(change);
      else if ((seen.get(change.key) ?? 0) < change.revision) post({ type: 'fleet-rule', key: change.key, ...(change.value !== undefined ? { value: change.value } : {}) });
    }
  })().catch((error: unknown) => setProblem(`watching ${names.rulesBucket}: ${messageOf(error)}`));
  const entries: Array<{ key: string; value: string }> = [];
  for await (const key of await kv.keys()) {
    if (!mine(key)) continue;
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') continue;
    seen.set(key, e.revision);
    entries.push({ key, value: e.string() });
  }
  post({ type: 'fleet-rules', entries });
  snapshotDone = true;
  for (const c of held) if ((seen.get(c.key) ?? 0) < c.revision) post({ type: 'fleet-rule', key: c.key, ...(c.value !== undefined ? { value: c.value } : {}) });
}

function serveRequests(conn: NatsConnection): Subscription {
  const sub = conn.subscribe(names.requests(data.host));
  void (async () => {
    for await (const msg of sub) {
      if (!msg.reply) continue;
      const user = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
      if (msg.data.length > MAX_BODY_BYTES) {
        msg.respond(`{"type":"error","code":"line-too-long","message":"request body over ${MAX_BODY_BYTES} bytes"}\n`);
        continue;
      }
      const id = nextRequestId++;
      const timer = setTimeout(() => {
        waitingReplies.delete(id);
        msg.respond('{"type":"error","code":"internal","message":"the agent did not answer in time"}\n');
      }, REPLY_TIMEOUT_MS);
      waitingReplies.set(id, { msg, timer });
      post({ type: 'request', id, user, server: conn.info?.server_name ?? conn.getServer(), body: new TextDecoder().decode(msg.data) });
    }
  })().catch((error: unknown) => setProblem(`requests: ${messageOf(error)}`));
  return sub;
}

async function run(): Promise<void> {
  const conn = await connectNats(data.config, `flowtop-agent ${data.host}`, { waitOnFirstConnect: true, maxReconnectAttempts: -1 });
  nc = conn;
  if (stopping) return void (await conn.close());
  void (async () => {
    for await (const s of conn.status()) {
      if (s.type === 'disconnect') {
        connected = false;
        status.state = 'reconnecting';
        delete status.server;
      } else if (s.type === 'reconnect') {
        void afterConnect(conn).catch((error: unknown) => setProblem(messageOf(error)));
      } else if (s.type === 'error') {
        setProblem(messageOf((s as { error?: unknown }).error ?? 'server error'));
      }
    }
  })();
  void conn.closed().then((error) => {
    connected = false;
    status.state = 'closed';
    if (error) setProblem(`connection closed: ${messageOf(error)}`);
  });
  serveRequests(conn);
  await afterConnect(conn);
}

// ---- messages from the main thread ----

parentPort!.on('message', (m: MainToLink) => {
  switch (m.type) {
    case 'events':
      take(m);
      return;
    case 'hello':
      hello = m.hello;
      return;
    case 'reply': {
      const waiting = waitingReplies.get(m.id);
      if (!waiting) return;
      waitingReplies.delete(m.id);
      clearTimeout(waiting.timer);
      status.requests++;
      try {
        let h: ReturnType<typeof headers> | undefined;
        for (const [k, v] of Object.entries(m.headers ?? {})) (h ??= headers()).set(k, v);
        waiting.msg.respond(m.body, h ? { headers: h } : undefined);
      } catch (error) {
        log(`NATS: a reply could not be sent: ${messageOf(error)}`);
      }
      return;
    }
    case 'stop':
      void stop();
  }
});

async function stop(): Promise<void> {
  // What is waiting gets a short chance to leave; the agent's stop does not wait on NATS for long.
  const until = Date.now() + 1000;
  while (connected && (sealed !== undefined || backlog.length > 0) && Date.now() < until) await sleep(20);
  stopping = true;
  wake();
  stopWatch?.();
  try {
    await nc?.close();
  } catch {
    // closing a connection that never opened
  }
  postStatus();
  post({ type: 'stopped' });
  process.exit(0);
}

setInterval(postStatus, 500).unref();
setInterval(() => void announce().catch((error: unknown) => setProblem(`announcing: ${messageOf(error)}`)), ANNOUNCE_INTERVAL_MS);
void pump();
run().catch((error: unknown) => {
  status.state = 'closed';
  setProblem(`cannot connect: ${messageOf(error)}`);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
