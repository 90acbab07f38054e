// Reads a scenario file (format: demo/scenarios/README.md). Every line is checked; a bad line is
// reported as "file:line: what is wrong" and skipped, so one typo never hides a whole recording.
// Protocol fields are checked by the protocol codec itself, so a scenario can only hold messages a
// real extension could send.
import type { Attribution } from '../attribution/types.js';
import { decodeExtensionMessage } from '../protocol/codec.js';
import {
  PROTOCOL_VERSION,
  type Action,
  type BytesMessage,
  type FlowRecord,
  type HelloMessage,
} from '../protocol/messages.js';
import { readAttribution } from './attribution-record.js';
import { base64Bytes, checkOneOf, checkString, firstError, isObject, unknownKey, type JsonObject } from './fields.js';

/** A flow as recorded: no wall-clock time (set when replayed); a pending deadline relative to its start. */
export interface ScenarioFlow extends Omit<FlowRecord, 'time' | 'pending'> {
  pending?: { deadlineMs: number; default?: Action };
}

export type ScenarioEvent =
  | { at: number; line: number; kind: 'flow'; flow: ScenarioFlow }
  | { at: number; line: number; kind: 'bytes'; counters: BytesMessage['counters'] }
  | { at: number; line: number; kind: 'end'; id: string; reason?: string };

export interface Scenario {
  name: string;
  description: string;
  file: string;
  hello: HelloMessage;
  /** Base64 token → what the recording says about its process. */
  attributions: Map<string, Attribution>;
  /** In time order. */
  events: ScenarioEvent[];
  /** Length of one pass; a looped replay starts over after this many scenario milliseconds. */
  lengthMs: number;
}

export interface ScenarioProblem {
  file: string;
  line: number;
  message: string;
}

export function formatProblem(problem: ScenarioProblem): string {
  return `${problem.file}:${problem.line}: ${problem.message}`;
}

export interface ParsedScenario {
  scenario: Scenario;
  problems: ScenarioProblem[];
}

const LINE_TYPES = ['scenario', 'attribution', 'flow', 'bytes', 'end', 'note'];
const FLOW_FIELDS = [
  'id', 'direction', 'protocol', 'family', 'local', 'remote', 'remoteHost', 'token', 'appToken', 'pid', 'uid', 'ownerError', 'pending', 'verdict',
];
const HELLO_FIELDS = ['extension', 'platform', 'host', 'capabilities', 'tokenKind', 'mode'];
const DEFAULT_CAPABILITIES: HelloMessage['capabilities'] = ['verdicts', 'end-flows', 'rules', 'bytes', 'host-names'];

/** Parses a whole scenario; `file` names it in problems. Never throws on content. */
export function parseScenario(text: string, file: string): ParsedScenario {
  const reader = new ScenarioReader(file);
  text.split(/\r?\n/).forEach((line, index) => reader.readLine(line, index + 1));
  return reader.finish();
}

class ScenarioReader {
  private readonly problems: ScenarioProblem[] = [];
  private header?: { name: string; description: string; hello: HelloMessage; lengthMs?: number; line: number };
  private sawContent = false;
  private readonly attributions = new Map<string, Attribution>();
  private readonly events: ScenarioEvent[] = [];
  private lastAt = 0;
  /** Flow id → last cumulative counters, or 'ended'. */
  private readonly flows = new Map<string, { rx: number; tx: number } | 'ended'>();

  constructor(private readonly file: string) {}

  readLine(text: string, line: number): void {
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return this.problem(line, `not valid JSON (${(error as Error).message})`);
    }
    if (!isObject(value)) return this.problem(line, 'each line must be a JSON object');
    const type = value.type;
    const problem = this.sawContent || type === 'scenario' ? undefined : 'the first line must be the scenario header ({"type":"scenario", …})';
    this.sawContent = true;
    if (problem) this.problem(line, problem);
    switch (type) {
      case 'scenario': return this.readHeader(value, line);
      case 'attribution': return this.readAttributionLine(value, line);
      case 'flow': case 'bytes': case 'end': return this.readEvent(value, line);
      case 'note': return this.report(line, unknownKey(value, ['type', 'text'], 'note'));
      default: return this.problem(line, `unknown line type ${JSON.stringify(type)} (expected one of ${LINE_TYPES.join(', ')})`);
    }
  }

  finish(): ParsedScenario {
    const lastAt = this.events.at(-1)?.at ?? 0;
    let lengthMs = lastAt + 1000;
    if (this.header?.lengthMs !== undefined) {
      if (this.header.lengthMs < lastAt) {
        this.problem(this.header.line, `lengthMs ${this.header.lengthMs} is shorter than the last event (at ${lastAt}); using ${lengthMs}`);
      } else {
        lengthMs = Math.max(this.header.lengthMs, 1);
      }
    }
    if (!this.header && this.sawContent === false) this.problem(1, 'the file is empty: a scenario needs at least its header line');
    const name = this.header?.name ?? this.file.replace(/^.*\//, '').replace(/\.ndjson$/, '');
    const scenario: Scenario = {
      name,
      description: this.header?.description ?? '',
      file: this.file,
      hello: this.header?.hello ?? defaultHello(name),
      attributions: this.attributions,
      events: this.events,
      lengthMs,
    };
    return { scenario, problems: this.problems };
  }

  private readHeader(value: JsonObject, line: number): void {
    if (this.header) return this.problem(line, `a second scenario header (the first is on line ${this.header.line})`);
    const problem = firstError(
      unknownKey(value, ['type', 'name', 'description', 'hello', 'lengthMs'], 'scenario header'),
      checkString(value.name, 'name'),
      checkString(value.description, 'description', true),
      value.lengthMs === undefined || (Number.isSafeInteger(value.lengthMs) && (value.lengthMs as number) > 0)
        ? undefined
        : 'lengthMs must be a whole number of milliseconds > 0',
      isObject(value.hello) ? undefined : 'hello must be an object (extension, host, capabilities, platform, tokenKind)',
    );
    if (problem) return this.problem(line, problem);
    const hello = value.hello as JsonObject;
    const helloProblem = unknownKey(hello, HELLO_FIELDS, 'hello');
    if (helloProblem) return this.problem(line, helloProblem);
    const decoded = decodeExtensionMessage(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, ...hello }));
    if (!decoded.ok) return this.problem(line, `hello: ${decoded.error.message}`);
    if (decoded.message.type !== 'hello') return this.problem(line, 'hello: not a hello message');
    if (decoded.message.platform !== 'demo') return this.problem(line, 'hello.platform must be "demo" (a recording is no live platform)');
    if (decoded.message.tokenKind !== 'replay') return this.problem(line, 'hello.tokenKind must be "replay" (tokens resolve through the recorded attributions)');
    this.header = {
      name: value.name as string,
      description: (value.description as string | undefined) ?? '',
      hello: decoded.message,
      line,
      ...(value.lengthMs !== undefined ? { lengthMs: value.lengthMs as number } : {}),
    };
  }

  private readAttributionLine(value: JsonObject, line: number): void {
    const problem = firstError(
      unknownKey(value, ['type', 'token', 'attribution'], 'attribution line'),
      base64Bytes(value.token) ? undefined : 'token must be the token bytes in base64 (canonical, padded)',
    );
    if (problem) return this.problem(line, problem);
    const token = value.token as string;
    if (this.attributions.has(token)) return this.problem(line, 'this token already has an attribution earlier in the file');
    const attribution = readAttribution(value.attribution);
    if (typeof attribution === 'string') return this.problem(line, attribution);
    this.attributions.set(token, attribution);
  }

  private readEvent(value: JsonObject, line: number): void {
    const at = value.at;
    if (typeof at !== 'number' || !Number.isFinite(at) || at < 0) {
      return this.problem(line, '"at" must be the event\'s offset in milliseconds from the start (a number ≥ 0)');
    }
    if (at < this.lastAt) return this.problem(line, `at ${at} is earlier than the previous event (at ${this.lastAt}): events must be in time order`);
    const problem =
      value.type === 'flow' ? this.readFlow(value, at, line) : value.type === 'bytes' ? this.readBytes(value, at, line) : this.readEnd(value, at, line);
    if (problem) return this.problem(line, problem);
    this.lastAt = at;
  }

  private readFlow(value: JsonObject, at: number, line: number): string | undefined {
    const shape = firstError(unknownKey(value, ['type', 'at', 'flow'], 'flow line'), isObject(value.flow) ? undefined : 'flow must be an object');
    if (shape) return shape;
    const { pending, ...rest } = value.flow as JsonObject;
    if (rest.time !== undefined) return 'flow.time is set when the flow is replayed; remove it (use "at")';
    // The protocol decoder keeps only the fields it knows; a misspelt one must not vanish in silence.
    const pendingProblem = firstError(unknownKey(value.flow as JsonObject, FLOW_FIELDS, 'flow'), readPending(pending));
    if (pendingProblem) return pendingProblem;
    if (pending !== undefined && rest.verdict !== undefined) return 'a flow is either pending or already decided (verdict), not both';
    const probe = { ...rest, time: 0, ...(pending !== undefined ? { pending: { deadline: 0 } } : {}) };
    const decoded = decodeExtensionMessage(JSON.stringify({ type: 'flow', flow: probe }));
    if (!decoded.ok) return `flow: ${decoded.error.message}`;
    if (decoded.message.type !== 'flow') return 'flow: not a flow message';
    const { time: _time, pending: _probePending, ...record } = decoded.message.flow;
    if (this.flows.has(record.id)) return `flow id "${record.id}" is used twice (ids name one flow within a scenario)`;
    this.flows.set(record.id, { rx: 0, tx: 0 });
    const flow: ScenarioFlow = { ...record, ...(pending !== undefined ? { pending: pending as ScenarioFlow['pending'] & object } : {}) };
    this.events.push({ at, line, kind: 'flow', flow });
    return undefined;
  }

  private readBytes(value: JsonObject, at: number, line: number): string | undefined {
    const shape = unknownKey(value, ['type', 'at', 'counters'], 'bytes line');
    if (shape) return shape;
    const decoded = decodeExtensionMessage(JSON.stringify({ type: 'bytes', counters: value.counters, time: 0 }));
    if (!decoded.ok) return `bytes: ${decoded.error.message}`;
    if (decoded.message.type !== 'bytes') return 'bytes: not a bytes message';
    const counters = decoded.message.counters;
    for (const counter of counters) {
      const known = this.flows.get(counter.id);
      if (known === undefined) return `bytes for flow "${counter.id}", which no earlier flow line starts`;
      if (known === 'ended') return `bytes for flow "${counter.id}" after its end`;
      if (counter.rx < known.rx || counter.tx < known.tx) return `counters of flow "${counter.id}" go down: they are cumulative since the flow began`;
    }
    for (const counter of counters) this.flows.set(counter.id, { rx: counter.rx, tx: counter.tx });
    this.events.push({ at, line, kind: 'bytes', counters });
    return undefined;
  }

  private readEnd(value: JsonObject, at: number, line: number): string | undefined {
    const shape = unknownKey(value, ['type', 'at', 'id', 'reason'], 'end line');
    if (shape) return shape;
    const decoded = decodeExtensionMessage(JSON.stringify({ type: 'end', id: value.id, time: 0, ...(value.reason !== undefined ? { reason: value.reason } : {}) }));
    if (!decoded.ok) return `end: ${decoded.error.message}`;
    if (decoded.message.type !== 'end') return 'end: not an end message';
    const { id, reason } = decoded.message;
    const known = this.flows.get(id);
    if (known === undefined) return `end of flow "${id}", which no earlier flow line starts`;
    if (known === 'ended') return `flow "${id}" ends twice`;
    this.flows.set(id, 'ended');
    this.events.push({ at, line, kind: 'end', id, ...(reason !== undefined ? { reason } : {}) });
    return undefined;
  }

  private report(line: number, problem: string | undefined): void {
    if (problem) this.problem(line, problem);
  }

  private problem(line: number, message: string): void {
    this.problems.push({ file: this.file, line, message });
  }
}

function readPending(pending: unknown): string | undefined {
  if (pending === undefined) return undefined;
  if (!isObject(pending)) return 'flow.pending must be an object: {"deadlineMs": N, "default"?: "allow"|"block"}';
  return firstError(
    unknownKey(pending, ['deadlineMs', 'default'], 'flow.pending'),
    Number.isSafeInteger(pending.deadlineMs) && (pending.deadlineMs as number) > 0
      ? undefined
      : 'flow.pending.deadlineMs must be a whole number of milliseconds > 0 (how long the flow waits for a verdict)',
    checkOneOf(pending.default, 'flow.pending.default', ['allow', 'block'], true),
  );
}

function defaultHello(name: string): HelloMessage {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    extension: { name: `flowtop-demo (${name})`, version: '1' },
    platform: 'demo',
    host: 'demo',
    capabilities: DEFAULT_CAPABILITIES,
    tokenKind: 'replay',
    mode: { defaultAction: 'allow' },
  };
}
