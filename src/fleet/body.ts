// A NATS body as protocol v1 messages: the same framing and decoders as the socket (a body is NDJSON
// lines), so a bad line is reported in words and skipped, and nothing in a body can throw.
import { decodeExtensionMessage, frameError } from '../protocol/codec.js';
import { LineSplitter } from '../protocol/framing.js';
import type { ExtensionMessage } from '../protocol/messages.js';
import { MAX_BODY_BYTES } from './wire.js';

export interface DecodedBody {
  messages: ExtensionMessage[];
  /** What was wrong with each skipped line, in words. */
  problems: string[];
}

export function decodeBody(body: Uint8Array): DecodedBody {
  const messages: ExtensionMessage[] = [];
  const problems: string[] = [];
  if (body.byteLength > MAX_BODY_BYTES) {
    problems.push(`a body of ${body.byteLength} bytes is over the ${MAX_BODY_BYTES}-byte limit: skipped whole`);
    return { messages, problems };
  }
  const splitter = new LineSplitter();
  // A body's last line may lack its newline: the body is complete, so that line is too.
  const last = body.byteLength > 0 && body[body.byteLength - 1] !== 0x0a;
  const events = splitter.push(body);
  if (last) events.push(...splitter.push(new Uint8Array([0x0a])));
  for (const event of events) {
    if (event.kind !== 'line') {
      const error = frameError(event);
      if (error) problems.push(`${error.code}: ${error.message}`);
      continue;
    }
    const decoded = decodeExtensionMessage(event.line);
    if (decoded.ok) messages.push(decoded.message);
    else problems.push(`${decoded.error.code}: ${decoded.error.message}`);
  }
  return { messages, problems };
}

/** Messages as one body (NDJSON, a newline after each). */
export function encodeBody(lines: readonly string[]): Uint8Array {
  return new TextEncoder().encode(lines.join(''));
}
