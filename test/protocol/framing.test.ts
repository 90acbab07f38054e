// LineSplitter: lines across chunk boundaries, bounded memory for endless lines, EOF handling.
import { describe, expect, test } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LineSplitter } from '../../src/protocol/framing.js';
import { decodeClientMessage, decodeExtensionMessage, frameError } from '../../src/protocol/codec.js';
import { MAX_LINE_BYTES } from '../../src/protocol/messages.js';

const lines = (events: ReturnType<LineSplitter['push']>): string[] => events.map((e) => (e.kind === 'line' ? e.line : `<${e.kind}>`));

describe('LineSplitter', () => {
  test('splits lines, joins them across chunks byte by byte, skips blank lines', () => {
    const s = new LineSplitter();
    const text = Buffer.from('{"a":1}\n\n  \n{"b":"é→😀"}\r\nlast\n');
    const out: string[] = [];
    for (const byte of text) out.push(...lines(s.push(Buffer.from([byte]))));
    expect(out).toEqual(['{"a":1}', '{"b":"é→😀"}\r', 'last']);
    expect(s.bufferedBytes).toBe(0);
  });

  test('a line of exactly the limit passes; one byte more is too long', () => {
    const s = new LineSplitter();
    const exact = 'x'.repeat(MAX_LINE_BYTES);
    expect(lines(s.push(Buffer.from(`${exact}\n`)))).toEqual([exact]);
    expect(lines(s.push(Buffer.from(`${exact}x\nok\n`)))).toEqual(['<too-long>', 'ok']);
  });

  test('a 10 MB line streamed in 64 KiB chunks is never buffered beyond the limit and reported once', () => {
    const s = new LineSplitter();
    const chunk = Buffer.alloc(64 * 1024, 'y');
    const events: string[] = [];
    let peak = 0;
    for (let sent = 0; sent < 10 * 1024 * 1024; sent += chunk.length) {
      events.push(...lines(s.push(chunk)));
      peak = Math.max(peak, s.bufferedBytes);
    }
    events.push(...lines(s.push(Buffer.from('\n{"next":true}\n'))));
    expect(events).toEqual(['<too-long>', '{"next":true}']);
    expect(peak).toBeLessThanOrEqual(MAX_LINE_BYTES);
  });

  test('a partial line at the end of the stream is reported, then the splitter is reset', () => {
    const s = new LineSplitter();
    expect(lines(s.push(Buffer.from('done\npart')))).toEqual(['done']);
    expect(s.end()).toEqual([{ kind: 'incomplete', bytes: 4 }]);
    expect(s.end()).toEqual([]);
    expect(lines(s.push(Buffer.from('fresh\n')))).toEqual(['fresh']);
  });

  test('an over-long line cut by the end of the stream is reported once, as too long', () => {
    const s = new LineSplitter(8);
    expect(lines(s.push(Buffer.from('123456789')))).toEqual(['<too-long>']);
    expect(s.end()).toEqual([]);
  });

  test('invalid UTF-8 is reported, not turned into replacement characters', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]))).toEqual([{ kind: 'bad-utf8', bytes: 4 }]);
    // A multi-byte character split across chunks is fine.
    const euro = Buffer.from('"€"\n');
    expect(lines([...s.push(euro.subarray(0, 2)), ...s.push(euro.subarray(2))])).toEqual(['"€"']);
  });

  test('random bytes in random chunks: never throws, never holds more than the limit', () => {
    const s = new LineSplitter(4096);
    let peak = 0;
    let events = 0;
    for (let i = 0; i < 2000; i++) {
      const chunk = randomBytes(1 + ((i * 7919) % 9000));
      for (const e of s.push(chunk)) {
        events++;
        if (e.kind === 'line') {
          expect(decodeExtensionMessage(e.line).ok).toBe(false);
          expect(decodeClientMessage(e.line).ok).toBe(false);
        } else expect(frameError(e)?.code).toMatch(/^(line-too-long|bad-json)$/);
      }
      peak = Math.max(peak, s.bufferedBytes);
    }
    for (const e of s.end()) expect(frameError(e)?.code).toBe('incomplete-line');
    expect(peak).toBeLessThanOrEqual(4096);
    expect(events).toBeGreaterThan(0);
  });
});
