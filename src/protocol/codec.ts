// Encoder and validating decoders for protocol v1 (docs/protocol.md). The decoders never throw,
// whatever the input: every failure comes back as an ErrorCode plus words naming what was wrong.
import type {
  BytesMessage, ClientMessage, ClientVerdictMessage, EndMessage, ErrorCode, ErrorMessage, ExtensionMessage, Rule,
  RuleAddMessage, RuleChangedMessage, RuleRemoveMessage, RulesListMessage, RulesMessage, SubscribeMessage, VerdictMessage,
} from './messages.js';
import { ACTIONS, BLOCK_MODES, LIMITS, MAX_LINE_BYTES, U32_MAX } from './messages.js';
import type { FrameEvent } from './framing.js';
import { REMEMBER_SCOPES, flowRecord, hello, peerInfo, rule, ruleSpec, verdict } from './schema.js';
import { Invalid, array, asObject, assign, describe, integer, object, oneOf, optBoolean, optInteger, optOneOf, optString, string, time, type Obj } from './validate.js';

export { LineSplitter, type FrameEvent } from './framing.js';

export interface ProtocolError {
  code: ErrorCode;
  message: string;
  /** The `ref` of the offending message, when one could be read from it. */
  ref?: string;
}

export type DecodeResult<T> = { ok: true; message: T } | { ok: false; error: ProtocolError };

export const ERROR_CODES: readonly ErrorCode[] = [
  'bad-json', 'bad-message', 'unknown-type', 'line-too-long', 'incomplete-line', 'version-mismatch', 'not-authorised',
  'unknown-flow', 'not-pending', 'not-supported', 'unknown-rule', 'out-of-order', 'too-many-errors', 'internal',
];

export class MessageTooLongError extends RangeError {
  constructor(readonly bytes: number) {
    super(`encoded message is ${bytes} bytes, over the ${MAX_LINE_BYTES}-byte line limit`);
  }
}

/** One message as one NDJSON line ("\n" included). Throws MessageTooLongError when the line would
 *  exceed MAX_LINE_BYTES: a receiver would drop it, so sending it is a bug in the caller (split rule
 *  snapshots with rulesSnapshot, byte counters with bytesMessages). */
export function encodeMessage(msg: ExtensionMessage | ClientMessage): string {
  const line = JSON.stringify(msg);
  // Bytes ≤ 3 × UTF-16 length, so the exact count is only needed near the limit.
  if (line.length * 3 > MAX_LINE_BYTES) {
    const bytes = Buffer.byteLength(line, 'utf8');
    if (bytes > MAX_LINE_BYTES) throw new MessageTooLongError(bytes);
  }
  return `${line}\n`;
}

/** One message as one or more NDJSON lines, each under the limit: a `bytes` or `rules` message too
 *  long for one line is split as protocol §2 requires (the parts of a `rules` list keep its `ref`, all
 *  but the last say `continues`). Any other message over the limit throws MessageTooLongError. */
export function encodeLines(msg: ExtensionMessage): string {
  const line = JSON.stringify(msg);
  if (line.length * 3 <= MAX_LINE_BYTES || Buffer.byteLength(line, 'utf8') <= MAX_LINE_BYTES) return `${line}\n`;
  if (msg.type === 'bytes') return bytesMessages(msg.counters, msg.time).map(encodeMessage).join('');
  if (msg.type === 'rules') {
    const parts = rulesSnapshot(msg.rules, msg.ref);
    if (msg.continues) parts[parts.length - 1]!.continues = true;
    return parts.map(encodeMessage).join('');
  }
  throw new MessageTooLongError(Buffer.byteLength(line, 'utf8'));
}

/** Splits a list into as many messages as needed to keep each line under MAX_LINE_BYTES. */
function split<T, M>(items: readonly T[], make: (part: T[], last: boolean) => M): M[] {
  const out: M[] = [];
  const budget = MAX_LINE_BYTES - 1024; // room for the envelope around the items
  let start = 0;
  do {
    let size = 0;
    let end = start;
    while (end < items.length) {
      const itemBytes = Buffer.byteLength(JSON.stringify(items[end]), 'utf8') + 1;
      if (end > start && size + itemBytes > budget) break;
      size += itemBytes;
      end++;
    }
    out.push(make(items.slice(start, end), end >= items.length));
    start = end;
  } while (start < items.length);
  return out;
}

/** A full rule snapshot as one or more `rules` messages; all but the last carry `continues: true`. */
export function rulesSnapshot(rules: readonly Rule[], ref?: string): RulesMessage[] {
  return split(rules, (part, last): RulesMessage => ({ type: 'rules', rules: part, ...(last ? {} : { continues: true }), ...(ref ? { ref } : {}) }));
}

/** Byte counters as `bytes` messages that each fit in one line. */
export function bytesMessages(counters: BytesMessage['counters'], time: number): BytesMessage[] {
  if (counters.length === 0) return [];
  return split(counters, (part): BytesMessage => ({ type: 'bytes', counters: part, time }));
}

/** The error to report for a framing problem (a line event is not an error: returns undefined). */
export function frameError(event: FrameEvent): ProtocolError | undefined {
  switch (event.kind) {
    case 'line':
      return undefined;
    case 'too-long':
      return { code: 'line-too-long', message: `line longer than ${event.limit} bytes: discarded up to its newline` };
    case 'incomplete':
      return { code: 'incomplete-line', message: `stream ended inside a line (${event.bytes} bytes without a final newline): discarded` };
    case 'bad-utf8':
      return { code: 'bad-json', message: `line of ${event.bytes} bytes is not valid UTF-8` };
  }
}

function parse(line: string): DecodeResult<Obj> & { type?: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    const why = error instanceof Error ? error.message : 'unreadable';
    return { ok: false, error: { code: 'bad-json', message: `not valid JSON: ${why.slice(0, 200)}` } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: { code: 'bad-message', message: `a message must be a JSON object, got ${describe(value)}` } };
  }
  return { ok: true, message: value as Obj };
}

function refOf(o: Obj): string | undefined {
  const ref = Object.prototype.hasOwnProperty.call(o, 'ref') ? o['ref'] : undefined;
  return typeof ref === 'string' && ref.length > 0 && ref.length <= LIMITS.id ? ref : undefined;
}

function decodeWith<T>(line: string, readers: Record<string, (o: Obj) => T>, side: string): DecodeResult<T> {
  try {
    const parsed = parse(line);
    if (!parsed.ok) return parsed;
    const o = parsed.message;
    const ref = refOf(o);
    const type = Object.prototype.hasOwnProperty.call(o, 'type') ? o['type'] : undefined;
    const fail = (code: ErrorCode, message: string): DecodeResult<T> => ({ ok: false, error: ref ? { code, message, ref } : { code, message } });
    if (typeof type !== 'string') return fail('bad-message', type === undefined ? 'type: required field is missing' : `type: expected a string, got ${describe(type)}`);
    const reader = Object.prototype.hasOwnProperty.call(readers, type) ? readers[type] : undefined;
    if (!reader) return fail('unknown-type', `unknown ${side} message type ${describe(type)} (known: ${Object.keys(readers).join(', ')})`);
    try {
      return { ok: true, message: reader(o) };
    } catch (error) {
      if (error instanceof Invalid) return fail('bad-message', `${type} message: ${error.message}`);
      throw error;
    }
  } catch (error) {
    // Not reachable by design; kept so that no input can ever make the decoder throw.
    return { ok: false, error: { code: 'internal', message: `decoder failure: ${error instanceof Error ? error.message : String(error)}` } };
  }
}

const withRef = <T extends { ref?: string }>(msg: T, o: Obj): T => {
  assign(msg, 'ref', optString(o, 'ref', '', LIMITS.id));
  return msg;
};

const extensionReaders: Record<ExtensionMessage['type'], (o: Obj) => ExtensionMessage> = {
  hello,
  flow: (o) => ({ type: 'flow', flow: flowRecord(object(o, 'flow', ''), 'flow') }),
  bytes: (o): BytesMessage => ({
    type: 'bytes',
    counters: array(o, 'counters', '', (v, path) => {
      const c = asObject(v, path);
      return { id: string(c, 'id', path, LIMITS.id), rx: integer(c, 'rx', path, 0, Number.MAX_SAFE_INTEGER), tx: integer(c, 'tx', path, 0, Number.MAX_SAFE_INTEGER) };
    }),
    time: time(o, 'time', ''),
  }),
  end: (o) => {
    const msg: EndMessage = { type: 'end', id: string(o, 'id', '', LIMITS.id), time: time(o, 'time', '') };
    assign(msg, 'reason', optString(o, 'reason', '', LIMITS.text));
    return msg;
  },
  verdict: (o): VerdictMessage => ({ type: 'verdict', id: string(o, 'id', '', LIMITS.id), time: time(o, 'time', ''), verdict: verdict(object(o, 'verdict', ''), 'verdict') }),
  rules: (o) => {
    const msg: RulesMessage = { type: 'rules', rules: array(o, 'rules', '', rule) };
    if (o['continues'] === true) msg.continues = true;
    return withRef(msg, o);
  },
  'rule-changed': (o) => {
    const msg: RuleChangedMessage = { type: 'rule-changed', op: oneOf(o, 'op', '', ['added', 'updated', 'removed'] as const), rule: rule(object(o, 'rule', ''), 'rule') };
    return withRef(msg, o);
  },
  error: (o) => {
    const msg: ErrorMessage = { type: 'error', code: oneOf(o, 'code', '', ERROR_CODES), message: string(o, 'message', '', LIMITS.text, 0) };
    return withRef(msg, o);
  },
};

const clientReaders: Record<ClientMessage['type'], (o: Obj) => ClientMessage> = {
  subscribe: (o) => withRef<SubscribeMessage>({ type: 'subscribe', protocol: integer(o, 'protocol', '', 1, U32_MAX), client: peerInfo(o, 'client') }, o),
  verdict: (o) => {
    const msg: ClientVerdictMessage = {
      type: 'verdict',
      id: string(o, 'id', '', LIMITS.id),
      action: oneOf(o, 'action', '', ACTIONS),
      remember: oneOf(o, 'remember', '', ['once', 'process', 'always'] as const),
    };
    assign(msg, 'scope', optOneOf(o, 'scope', '', REMEMBER_SCOPES));
    assign(msg, 'forMs', optInteger(o, 'forMs', '', 1, U32_MAX));
    assign(msg, 'session', optBoolean(o, 'session', ''));
    assign(msg, 'blockMode', optOneOf(o, 'blockMode', '', BLOCK_MODES));
    if (msg.scope && msg.remember === 'once') throw new Invalid('scope', 'no scope with remember "once" (nothing is remembered)', msg.scope);
    if (msg.forMs !== undefined && msg.remember !== 'always') throw new Invalid('forMs', 'no forMs unless remember is "always" (a process rule ends with its process)', msg.forMs);
    if (msg.session !== undefined && msg.remember !== 'always') throw new Invalid('session', 'no session unless remember is "always"', msg.session);
    if (msg.blockMode && msg.action !== 'block') throw new Invalid('blockMode', 'no blockMode with action "allow"', msg.blockMode);
    return withRef(msg, o);
  },
  'rule-add': (o) => withRef<RuleAddMessage>({ type: 'rule-add', rule: ruleSpec(object(o, 'rule', ''), 'rule') }, o),
  'rule-remove': (o) => withRef<RuleRemoveMessage>({ type: 'rule-remove', id: string(o, 'id', '', LIMITS.id) }, o),
  'rules-list': (o) => withRef<RulesListMessage>({ type: 'rules-list' }, o),
};

/** Decodes one line sent by an extension (the client side reads these). */
export function decodeExtensionMessage(line: string): DecodeResult<ExtensionMessage> {
  return decodeWith(line, extensionReaders, 'extension');
}

/** Decodes one line sent by a client (the extension side reads these). */
export function decodeClientMessage(line: string): DecodeResult<ClientMessage> {
  return decodeWith(line, clientReaders, 'client');
}
