// The demo extension's flow state machine, without I/O: scenario events, client verdicts, rules and
// deadlines go in; protocol messages to broadcast (and a reply error, if any) come out. The caller owns
// the clock, the timers and the socket.
import type { Attribution } from '../attribution/types.js';
import type {
  Action, BytesMessage, ClientVerdictMessage, DecidedBy, ErrorCode, ExtensionMessage, FlowRecord, Rule, RuleSpec, Verdict,
} from '../protocol/messages.js';
import { DemoRuleBook, flowSubject, rememberedRuleFor, type FlowSubject } from './rules.js';
import { chunkBySize } from './chunks.js';
import type { ScenarioFlow } from './scenario.js';

export interface Outcome {
  broadcast: ExtensionMessage[];
  /** Pending flows that need a timer: at `deadline` (epoch ms) call `deadline(id)`. */
  deadlines: Array<{ id: string; deadline: number }>;
  /** Sent back to the client whose message this was. */
  error?: { code: ErrorCode; message: string };
}

interface LiveFlow {
  record: FlowRecord;
  pass: number;
  subject: FlowSubject;
  defaultAction: Action;
  counters?: { rx: number; tx: number };
}

export interface DemoFlowsOptions {
  attributions: ReadonlyMap<string, Attribution>;
  /** The action a pending flow gets at its deadline unless the flow says otherwise. */
  defaultAction: Action;
  /** Replay speed: scenario deadlines shrink by this factor so they keep their place in the story. */
  speed: number;
}

/** A replayed flow's id: pass 0 keeps the recorded id; later passes of a loop get "#<pass>". */
export function replayId(id: string, pass: number): string {
  return pass === 0 ? id : `${id}#${pass}`;
}

export class DemoFlows {
  /** Flows that have started and not ended, pending or open. */
  private readonly flows = new Map<string, LiveFlow>();
  readonly rules = new DemoRuleBook();
  private pass = 0;

  constructor(private readonly options: DemoFlowsOptions) {}

  /** The messages that bring a new client up to date: rules, then every live flow as it is now. */
  snapshot(now: number): ExtensionMessage[] {
    const messages: ExtensionMessage[] = rulesMessages(this.rules.list());
    const counters: BytesMessage['counters'] = [];
    for (const flow of this.flows.values()) {
      messages.push({ type: 'flow', flow: { ...flow.record } });
      if (flow.counters) counters.push({ id: flow.record.id, ...flow.counters });
    }
    if (counters.length > 0) for (const part of chunkBySize(counters)) messages.push({ type: 'bytes', counters: part, time: now });
    return messages;
  }

  pendingIds(): string[] {
    return [...this.flows.values()].filter((flow) => flow.record.pending).map((flow) => flow.record.id);
  }

  start(recorded: ScenarioFlow, pass: number, now: number): Outcome {
    const out = this.newPass(pass, now);
    const { pending, ...rest } = recorded;
    const record: FlowRecord = { ...rest, id: replayId(recorded.id, pass), time: now };
    // Ids are unique in a checked file, but a scenario handed in already built is not checked, and a
    // duplicate would corrupt the client's table: the old flow ends first.
    if (this.flows.has(record.id)) out.broadcast.push(...this.finish(record.id, now, 'replaced by a new flow with the same id'));
    const flow: LiveFlow = {
      record,
      pass,
      subject: flowSubject(record, this.options.attributions),
      defaultAction: pending?.default ?? this.options.defaultAction,
    };
    const rule = this.rules.match(flow.subject.facts, now);
    if (rule) {
      record.verdict = ruleVerdict(rule);
      out.broadcast.push({ type: 'flow', flow: { ...record } }, ...this.countHit(rule.id, now));
      if (rule.action === 'block') out.broadcast.push(endMessage(record.id, now, `blocked by rule ${rule.id}`));
      else this.flows.set(record.id, flow);
      return out;
    }
    if (pending) {
      record.pending = { deadline: now + pending.deadlineMs / this.options.speed };
      out.deadlines.push({ id: record.id, deadline: record.pending.deadline });
    }
    out.broadcast.push({ type: 'flow', flow: { ...record } });
    // A flow recorded as already blocked (by a rule of the recording) ends at once, as a real one would.
    if (record.verdict?.action === 'block') out.broadcast.push(endMessage(record.id, now, 'blocked'));
    else this.flows.set(record.id, flow);
    return out;
  }

  /** Recorded byte counters; flows that are pending, blocked or gone have no traffic to show. */
  bytes(counters: BytesMessage['counters'], pass: number, now: number): Outcome {
    const out = this.newPass(pass, now);
    const live: BytesMessage['counters'] = [];
    for (const counter of counters) {
      const id = replayId(counter.id, pass);
      const flow = this.flows.get(id);
      if (!flow || flow.record.pending) continue;
      flow.counters = { rx: counter.rx, tx: counter.tx };
      live.push({ id, rx: counter.rx, tx: counter.tx });
    }
    if (live.length > 0) for (const part of chunkBySize(live)) out.broadcast.push({ type: 'bytes', counters: part, time: now });
    return out;
  }

  /** The recording says the flow ended (a pending one gave up waiting). Already ended: nothing. */
  end(recordedId: string, pass: number, now: number, reason?: string): Outcome {
    const out = this.newPass(pass, now);
    const id = replayId(recordedId, pass);
    if (this.flows.has(id)) out.broadcast.push(...this.finish(id, now, reason));
    return out;
  }

  /** A pending flow's deadline passed with no verdict: the default action decides it. */
  deadline(id: string, now: number): Outcome {
    const out = outcome();
    const flow = this.flows.get(id);
    if (!flow?.record.pending) return out; // decided or ended meanwhile
    out.broadcast.push(...this.decide(flow, { action: flow.defaultAction, by: 'default' }, now));
    return out;
  }

  /** A client's verdict: decides a pending flow (block ends it), blocks an open one, and may leave a rule. */
  verdict(message: ClientVerdictMessage, now: number): Outcome {
    const out = outcome();
    const flow = this.flows.get(message.id);
    if (!flow) return fail(out, 'unknown-flow', `no live flow "${message.id}" (it ended, or never existed)`);
    if (!flow.record.pending && message.action === 'allow') {
      return fail(out, 'not-pending', `flow "${message.id}" is not waiting for a verdict (it is already allowed)`);
    }
    const verdict: Verdict = { action: message.action, by: 'user', ...(message.blockMode ? { blockMode: message.blockMode } : {}) };
    out.broadcast.push(...this.decide(flow, verdict, now));
    if (message.remember === 'once') return out;
    const spec = rememberedRuleFor(
      { action: message.action, remember: message.remember, scope: message.scope ?? 'process', forMs: message.forMs, session: message.session, blockMode: message.blockMode },
      flow.subject,
      now,
    );
    if (typeof spec === 'string') {
      return fail(out, 'not-supported', `decided once only: cannot remember a rule for flow "${message.id}" because ${spec}`);
    }
    const added = this.addRule(spec, now);
    out.broadcast.push(...added.broadcast);
    return out;
  }

  /** Adds a rule and lets it decide every flow still waiting that it matches. */
  addRule(spec: RuleSpec, now: number): Outcome {
    const out = outcome();
    const rule = this.rules.add(spec, now);
    out.broadcast.push({ type: 'rule-changed', op: 'added', rule });
    for (const flow of [...this.flows.values()]) {
      if (!flow.record.pending || this.rules.match(flow.subject.facts, now)?.id !== rule.id) continue;
      out.broadcast.push(...this.decide(flow, ruleVerdict(rule), now), ...this.countHit(rule.id, now));
    }
    return out;
  }

  removeRule(id: string): Outcome {
    const out = outcome();
    const rule = this.rules.remove(id);
    if (!rule) return fail(out, 'unknown-rule', `no rule "${id}"`);
    out.broadcast.push({ type: 'rule-changed', op: 'removed', rule });
    return out;
  }

  /** When a loop starts over, flows the recording never ended are ended: nothing more will come for
   *  them, and keeping them would grow the table with every pass. */
  private newPass(pass: number, now: number): Outcome {
    const out = outcome();
    if (pass <= this.pass) return out;
    this.pass = pass;
    for (const flow of [...this.flows.values()]) {
      if (flow.pass < pass) out.broadcast.push(...this.finish(flow.record.id, now, 'the recording starts over'));
    }
    return out;
  }

  private decide(flow: LiveFlow, verdict: Verdict, now: number): ExtensionMessage[] {
    const id = flow.record.id;
    delete flow.record.pending;
    flow.record.verdict = verdict;
    const messages: ExtensionMessage[] = [{ type: 'verdict', id, time: now, verdict }];
    if (verdict.action === 'block') messages.push(...this.finish(id, now, `blocked (${describeBy(verdict.by, verdict.ruleId)})`));
    return messages;
  }

  private finish(id: string, now: number, reason?: string): ExtensionMessage[] {
    this.flows.delete(id);
    return [endMessage(id, now, reason)];
  }

  private countHit(ruleId: string, now: number): ExtensionMessage[] {
    const rule = this.rules.hit(ruleId, now);
    return rule ? [{ type: 'rule-changed', op: 'updated', rule }] : [];
  }

}

/** The whole rule list as `rules` messages; all but the last say `continues`. */
export function rulesMessages(rules: readonly Rule[], ref?: string): ExtensionMessage[] {
  const parts = chunkBySize(rules);
  return parts.map((part, i) => ({
    type: 'rules',
    rules: part,
    ...(i < parts.length - 1 ? { continues: true } : {}),
    ...(ref !== undefined ? { ref } : {}),
  }));
}

function outcome(): Outcome {
  return { broadcast: [], deadlines: [] };
}

function fail(out: Outcome, code: ErrorCode, message: string): Outcome {
  out.error = { code, message };
  return out;
}

function ruleVerdict(rule: Rule): Verdict {
  return { action: rule.action, by: 'rule', ruleId: rule.id, ...(rule.blockMode ? { blockMode: rule.blockMode } : {}) };
}

function endMessage(id: string, time: number, reason?: string): ExtensionMessage {
  return { type: 'end', id, time, ...(reason !== undefined ? { reason } : {}) };
}

function describeBy(by: DecidedBy, ruleId?: string): string {
  if (by === 'rule') return `rule ${ruleId ?? ''}`.trim();
  return by === 'user' ? 'by the user' : 'default action at the deadline';
}
