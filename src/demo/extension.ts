// The demo extension: a real protocol v1 extension on a Unix socket that replays a recorded scenario
// and honours what clients send back (verdicts, rules). Its processes are recorded, so it hands out
// the recording's attributions as a `replay` backend for the client to resolve tokens with.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReplayBackend } from '../attribution/replay-backend.js';
import type { AttributionBackend } from '../attribution/types.js';
import { UserError } from '../errors.js';
import type { ExtensionMessage, HelloMessage } from '../protocol/messages.js';
import { ExtensionServer, type RequestMessage, type ServerClient } from '../protocol/server.js';
import { DemoFlows, rulesMessages, type Outcome } from './flows.js';
import { DEFAULT_SCENARIO, loadScenario } from './scenario-files.js';
import type { Scenario, ScenarioEvent, ScenarioProblem } from './scenario.js';
import { Timeline } from './timeline.js';

/** The replay starts when the first client subscribes (then plays on whoever is connected). */
export interface DemoExtensionOptions {
  /** A shipped scenario's name, a path to an .ndjson file, or a scenario already read. Default: "default". */
  scenario?: string | Scenario;
  /** Where to listen; default a fresh path in the temporary directory. */
  socketPath?: string;
  /** Replay this many times faster than recorded (deadlines too). Default 1. */
  speed?: number;
  /** Start over after the last event, with fresh flow ids. Default false. */
  loop?: boolean;
}

export interface DemoExtension {
  socketPath: string;
  /** Resolves the scenario's tokens to its recorded attributions. */
  replay: AttributionBackend;
  scenario: Scenario;
  /** Lines of the scenario file that were skipped, with file:line. Empty for the shipped scenarios. */
  problems: ScenarioProblem[];
  close(): Promise<void>;
}

export const MAX_SPEED = 10_000;
/** Hit counts go out at most once per rule per this many ms. */
const HIT_UPDATE_MS = 1000;

export function defaultDemoSocketPath(): string {
  return join(tmpdir(), `flowtop-demo-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
}

export async function startDemoExtension(options: DemoExtensionOptions = {}): Promise<DemoExtension> {
  const speed = options.speed ?? 1;
  if (!Number.isFinite(speed) || speed <= 0 || speed > MAX_SPEED) {
    throw new UserError(`the replay speed must be a number above 0 and at most ${MAX_SPEED} (got ${String(speed)})`);
  }
  const { scenario, problems } =
    typeof options.scenario === 'object' ? { scenario: options.scenario, problems: [] } : loadScenario(options.scenario ?? DEFAULT_SCENARIO);
  const socketPath = options.socketPath ?? defaultDemoSocketPath();
  const demo = new DemoRun(scenario, speed, options.loop ?? false, socketPath);
  await demo.start();
  return {
    socketPath,
    replay: createReplayBackend(scenario.attributions),
    scenario,
    problems,
    close: () => demo.close(),
  };
}

/** The recorded hello, plus what this demo honours beyond the recording: a demo that accepts
 *  verdicts also honours their durations and scopes (its rules live in memory, so "until restart"
 *  means until the demo stops). */
export function demoHello(recorded: HelloMessage): HelloMessage {
  if (!recorded.capabilities.includes('verdicts')) return recorded;
  const extra = (['verdict-durations', 'verdict-scopes'] as const).filter((c) => !recorded.capabilities.includes(c));
  return { ...recorded, capabilities: [...recorded.capabilities, ...extra] };
}

class DemoRun {
  private readonly flows: DemoFlows;
  private readonly server: ExtensionServer;
  private readonly timeline: Timeline;
  private readonly deadlines = new Map<string, NodeJS.Timeout>();
  private closed = false;
  private started = false;

  constructor(scenario: Scenario, speed: number, loop: boolean, socketPath: string) {
    this.flows = new DemoFlows({
      attributions: scenario.attributions,
      defaultAction: scenario.hello.mode?.defaultAction ?? 'allow',
      speed,
    });
    this.server = new ExtensionServer({
      path: socketPath,
      hello: demoHello(scenario.hello),
      onSubscribe: () => {
        // The story starts when the first client watches, so nobody misses its beginning. Deferred:
        // events due at once must follow this client's snapshot, not precede its subscription.
        if (!this.started) setImmediate(() => this.startReplay());
        this.started = true;
        return this.flows.snapshot(Date.now());
      },
      onMessage: (client, msg) => this.request(client, msg),
    });
    this.timeline = new Timeline({
      events: scenario.events,
      lengthMs: scenario.lengthMs,
      speed,
      loop,
      onEvent: (event, pass) => this.play(event, pass),
    });
  }

  async start(): Promise<void> {
    try {
      await this.server.listen();
    } catch (error) {
      throw new UserError(
        `cannot listen on ${this.server.path}: ${(error as Error).message}`,
        'pick another path with --socket PATH (something else may already be serving there)',
      );
    }
  }

  private startReplay(): void {
    if (!this.closed) this.timeline.start();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timeline.stop();
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
    for (const held of this.hitsHeld.values()) clearTimeout(held.timer);
    this.hitsHeld.clear();
    await this.server.close();
  }

  private play(event: ScenarioEvent, pass: number): void {
    const now = Date.now();
    switch (event.kind) {
      case 'flow': return void this.apply(this.flows.start(event.flow, pass, now));
      case 'bytes': return void this.apply(this.flows.bytes(event.counters, pass, now));
      case 'end': return void this.apply(this.flows.end(event.id, pass, now, event.reason));
    }
  }

  private request(client: ServerClient, msg: RequestMessage): void {
    const now = Date.now();
    let outcome: Outcome;
    switch (msg.type) {
      case 'verdict':
        outcome = this.flows.verdict(msg, now);
        break;
      case 'rule-add':
        if (msg.rule.duration.kind === 'once') {
          client.reply('bad-message', 'a rule with duration "once" would never be kept: send a verdict for the flow instead', msg.ref);
          return;
        }
        outcome = this.flows.addRule(msg.rule, now);
        break;
      case 'rule-remove':
        outcome = this.flows.removeRule(msg.id);
        break;
      case 'rules-list':
        for (const message of rulesMessages(this.flows.rules.list(), msg.ref)) client.send(message);
        return;
    }
    // The change a request caused is answered by its rule-changed carrying the request's ref
    // (docs/protocol.md §6): that is how the asking client knows it was done.
    if (msg.ref !== undefined) {
      const ref = msg.ref;
      outcome = { ...outcome, broadcast: outcome.broadcast.map((m) => (m.type === 'rule-changed' && m.op !== 'updated' ? { ...m, ref } : m)) };
    }
    this.apply(outcome);
    if (outcome.error) client.reply(outcome.error.code, outcome.error.message, msg.ref);
  }

  private apply(outcome: Outcome): void {
    if (this.closed) return;
    for (const message of outcome.broadcast) this.broadcast(message);
    for (const { id, deadline } of outcome.deadlines) {
      clearTimeout(this.deadlines.get(id));
      const timer = setTimeout(() => {
        this.deadlines.delete(id);
        this.apply(this.flows.deadline(id, Date.now()));
      }, Math.max(0, deadline - Date.now()));
      timer.unref();
      this.deadlines.set(id, timer);
    }
  }

  /** When each rule's hit count was last sent, and the latest count held back (protocol §5: at
   *  most one `updated` per rule per second). */
  private readonly hitsSentAt = new Map<string, number>();
  private readonly hitsHeld = new Map<string, { message: ExtensionMessage; timer: NodeJS.Timeout }>();

  private broadcastHits(message: Extract<ExtensionMessage, { type: 'rule-changed' }>): void {
    const id = message.rule.id;
    const held = this.hitsHeld.get(id);
    if (held) {
      held.message = message; // the newer count replaces the one waiting
      return;
    }
    const wait = (this.hitsSentAt.get(id) ?? -Infinity) + HIT_UPDATE_MS - Date.now();
    if (wait <= 0) {
      this.hitsSentAt.set(id, Date.now());
      this.server.broadcast(message);
      return;
    }
    const timer = setTimeout(() => {
      const latest = this.hitsHeld.get(id);
      this.hitsHeld.delete(id);
      if (!latest || this.closed) return;
      this.hitsSentAt.set(id, Date.now());
      this.server.broadcast(latest.message);
    }, wait);
    timer.unref();
    this.hitsHeld.set(id, { message, timer });
  }

  private broadcast(message: ExtensionMessage): void {
    if (message.type === 'rule-changed') {
      if (message.op === 'updated') return this.broadcastHits(message);
      if (message.op === 'removed') {
        clearTimeout(this.hitsHeld.get(message.rule.id)?.timer);
        this.hitsHeld.delete(message.rule.id);
        this.hitsSentAt.delete(message.rule.id);
      }
    }
    if (message.type === 'end' || message.type === 'verdict') {
      // A decided or ended flow needs no deadline timer any more.
      const timer = this.deadlines.get(message.id);
      if (timer) {
        clearTimeout(timer);
        this.deadlines.delete(message.id);
      }
    }
    this.server.broadcast(message);
  }
}
