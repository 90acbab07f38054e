// NDJSON framing with a hard memory bound (docs/protocol.md, "Framing").
// A line longer than the limit is never held whole: once it passes the limit its bytes are dropped as
// they arrive, so a peer streaming 10 MB (or endless bytes) without a newline costs at most the limit.
import { MAX_LINE_BYTES } from './messages.js';

export type FrameEvent =
  | { kind: 'line'; line: string }
  /** The line passed the limit; reported once, at the moment it did. Bytes up to its newline are dropped. */
  | { kind: 'too-long'; limit: number }
  /** The stream ended inside a line (no final newline); the partial line is dropped. */
  | { kind: 'incomplete'; bytes: number }
  /** The line's bytes are not valid UTF-8. */
  | { kind: 'bad-utf8'; bytes: number };

const NEWLINE = 0x0a;
// fatal: invalid UTF-8 is reported instead of silently turned into U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class LineSplitter {
  /** Pieces of the current, unfinished line; their total never exceeds the limit. */
  private pieces: Buffer[] = [];
  private pending = 0;
  private discarding = false;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** Bytes held for the unfinished line (bounded by the limit). */
  get bufferedBytes(): number {
    return this.pending;
  }

  /** Feeds one chunk; returns what it completed, in order. Empty lines are skipped. */
  push(chunk: Uint8Array): FrameEvent[] {
    const events: FrameEvent[] = [];
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(NEWLINE, start);
      if (nl === -1) {
        this.take(buf, start, buf.length, events);
        break;
      }
      if (this.pending === 0 && !this.discarding && nl - start <= this.maxLineBytes) {
        // The common case, a whole line inside one chunk: decode it in place, no copy.
        this.emit(buf.subarray(start, nl), events);
      } else {
        this.take(buf, start, nl, events);
        this.finishLine(events);
      }
      start = nl + 1;
    }
    return events;
  }

  /** The stream ended: reports a partial last line, if any, and resets. */
  end(): FrameEvent[] {
    const events: FrameEvent[] = [];
    if (this.pending > 0 && !this.discarding) events.push({ kind: 'incomplete', bytes: this.pending });
    this.reset();
    return events;
  }

  private take(buf: Buffer, start: number, end: number, events: FrameEvent[]): void {
    if (this.discarding || end === start) return;
    const length = end - start;
    if (this.pending + length > this.maxLineBytes) {
      this.pieces = [];
      this.pending = 0;
      this.discarding = true;
      events.push({ kind: 'too-long', limit: this.maxLineBytes });
      return;
    }
    // Copy: the caller may reuse its chunk, and a slice would pin the whole chunk in memory.
    this.pieces.push(Buffer.from(buf.subarray(start, end)));
    this.pending += length;
  }

  private finishLine(events: FrameEvent[]): void {
    if (this.discarding) {
      this.reset();
      return;
    }
    if (this.pending === 0) return;
    const bytes = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.pending);
    this.reset();
    this.emit(bytes, events);
  }

  private emit(bytes: Uint8Array, events: FrameEvent[]): void {
    if (bytes.length === 0) return;
    let line: string;
    try {
      line = utf8.decode(bytes);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error; // what a fatal TextDecoder throws on bad bytes
      events.push({ kind: 'bad-utf8', bytes: bytes.length });
      return;
    }
    if (line.trim() === '') return;
    events.push({ kind: 'line', line });
  }

  private reset(): void {
    this.pieces = [];
    this.pending = 0;
    this.discarding = false;
  }
}
