// Splits a list so that each message built from a part stays well under the protocol's line limit.
import { MAX_LINE_BYTES } from '../protocol/messages.js';

/** Room left for the message around the items. */
const BUDGET = MAX_LINE_BYTES - 1024;

export function chunkBySize<T>(items: readonly T[]): T[][] {
  const parts: T[][] = [];
  let part: T[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = Buffer.byteLength(JSON.stringify(item), 'utf8') + 1;
    if (part.length > 0 && size + bytes > BUDGET) {
      parts.push(part);
      part = [];
      size = 0;
    }
    part.push(item);
    size += bytes;
  }
  if (part.length > 0 || parts.length === 0) parts.push(part);
  return parts;
}
