// The codec: every message survives a round trip, bad fields are named, the spec's own example
// session decodes as the spec says, and no input whatsoever makes a decoder throw.
import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  MessageTooLongError, bytesMessages, decodeClientMessage, decodeExtensionMessage, encodeMessage, rulesSnapshot,
} from '../../src/protocol/codec.js';
import { MAX_LINE_BYTES, type Rule } from '../../src/protocol/messages.js';
import { clientMessages, extensionMessages, flow, rule } from './samples.js';

/** JSON drops undefined members; compare against what a peer would actually receive. */
const wire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe('round trip', () => {
  test.each(extensionMessages.map((m, i) => [`${i}: ${m.type}`, m] as const))('extension %s', (_name, msg) => {
    const line = encodeMessage(msg);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(decodeExtensionMessage(line)).toEqual({ ok: true, message: wire(msg) });
  });

  test.each(clientMessages.map((m, i) => [`${i}: ${m.type}`, m] as const))('client %s', (_name, msg) => {
    expect(decodeClientMessage(encodeMessage(msg))).toEqual({ ok: true, message: wire(msg) });
  });

  test('every message type of both directions is covered', () => {
    expect(new Set(extensionMessages.map((m) => m.type))).toEqual(new Set(['hello', 'flow', 'bytes', 'end', 'verdict', 'rules', 'rule-changed', 'error']));
    expect(new Set(clientMessages.map((m) => m.type))).toEqual(new Set(['subscribe', 'verdict', 'rule-add', 'rule-remove', 'rules-list']));
  });

  test('unknown fields are dropped, null optional fields mean absent, unknown capabilities are ignored', () => {
    const line = JSON.stringify({ ...flow('f1'), extra: 1, flow: { ...flow('f1').flow, pid: null, future: { x: 1 } } });
    const decoded = decodeExtensionMessage(line);
    expect(decoded.ok && decoded.message).toEqual(wire({ ...flow('f1', { pid: undefined }) }));
    const hello = decodeExtensionMessage('{"type":"hello","protocol":1,"extension":{"name":"x","version":"1"},"platform":"linux","host":"h","capabilities":["bytes","teleport"],"tokenKind":"replay"}');
    expect(hello.ok && hello.message.type === 'hello' && hello.message.capabilities).toEqual(['bytes']);
  });
});

describe('hello.mode.history', () => {
  const hello = (history: unknown) => decodeExtensionMessage(JSON.stringify({ type: 'hello', protocol: 1, extension: { name: 'x', version: '1' }, platform: 'linux', host: 'h', capabilities: [], tokenKind: 'replay', mode: { history } }));
  test('an absolute path or "off" is read', () => {
    for (const value of ['/srv/flowtop/history.db', 'off']) {
      const r = hello(value);
      expect(r.ok && r.message.type === 'hello' && r.message.mode?.history).toBe(value);
    }
  });
  test.each([['a relative path', 'history.db'], ['an empty string', ''], ['a control character', '/tmp/a\nb.db'], ['a number', 3], ['too long', `/${'x'.repeat(4096)}`]])('%s makes the hello invalid, naming the field', (_name, value) => {
    const r = hello(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain('mode.history');
  });
});

describe('field validation names what was wrong', () => {
  const bad: Array<[string, unknown, string]> = [
    ['port out of range', { ...flow('f').flow, remote: { address: '1.2.3.4', port: 70000 } }, 'flow.remote.port'],
    ['address of the wrong family', { ...flow('f').flow, local: { address: '::1', port: 1 } }, 'flow.local.address'],
    ['negative time', { ...flow('f').flow, time: -1 }, 'flow.time'],
    ['pid not an integer', { ...flow('f').flow, pid: 1.5 }, 'flow.pid'],
    ['token with bad padding', { ...flow('f').flow, token: 'AAA' }, 'flow.token'],
    ['token with a bad character', { ...flow('f').flow, token: 'AA-A' }, 'flow.token'],
    ['token too long', { ...flow('f').flow, token: Buffer.alloc(65).toString('base64') }, 'flow.token'],
    ['pending and verdict at once', { ...flow('f').flow, verdict: { action: 'allow', by: 'user' } }, 'flow.verdict'],
    ['empty id', { ...flow('f').flow, id: '' }, 'flow.id'],
    ['id too long', { ...flow('f').flow, id: 'x'.repeat(129) }, 'flow.id'],
  ];
  test.each(bad)('%s', (_name, value, path) => {
    const result = decodeExtensionMessage(JSON.stringify({ type: 'flow', flow: value }));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('bad-message');
      expect(result.error.message).toContain(path);
    }
  });

  test('flow identity: absent, each kind valid, and bad ones refused by field', () => {
    const decode = (identity: unknown) => decodeExtensionMessage(JSON.stringify({ type: 'flow', flow: { ...flow('f').flow, identity } }));
    const absent = decodeExtensionMessage(JSON.stringify(flow('f')));
    expect(absent.ok && absent.message.type === 'flow' && 'identity' in absent.message.flow).toBe(false);
    expect(decode(null)).toMatchObject({ ok: true, message: { flow: { id: 'f' } } });
    const hash = 'ab'.repeat(32);
    expect(decode({ kind: 'sha256', value: hash, path: '/tmp/x/wget', label: 'dropped' })).toEqual({ ok: true, message: wire(flow('f', { identity: { kind: 'sha256', value: hash, path: '/tmp/x/wget' } })) });
    expect(decode({ kind: 'package', value: '/usr/bin/wget', package: 'wget' })).toMatchObject({ ok: true, message: { flow: { identity: { kind: 'package', value: '/usr/bin/wget', package: 'wget' } } } });
    expect(decode({ kind: 'requirement', value: 'identifier "com.example"' })).toMatchObject({ ok: true, message: { flow: { identity: { kind: 'requirement' } } } });
    const refused: Array<[unknown, string]> = [
      ['sha256:abc', 'flow.identity'],
      [{ kind: 'path', value: '/usr/bin/wget' }, 'flow.identity.kind'],
      [{ kind: 'sha256', value: 'AB'.repeat(32) }, 'flow.identity.value'],
      [{ kind: 'sha256', value: 'ab'.repeat(31) }, 'flow.identity.value'],
      [{ kind: 'sha256' }, 'flow.identity.value'],
      [{ kind: 'package', value: '/usr/bin/wget' }, 'flow.identity.package'],
      [{ kind: 'package', value: '/usr/bin/wget', package: 'x'.repeat(256) }, 'flow.identity.package'],
      [{ kind: 'requirement', value: 'x'.repeat(4097) }, 'flow.identity.value'],
      [{ kind: 'sha256', value: hash, path: 7 }, 'flow.identity.path'],
    ];
    for (const [identity, path] of refused) {
      expect(decode(identity)).toMatchObject({ ok: false, error: { code: 'bad-message', message: expect.stringContaining(path) } });
    }
  });

  test('client verdict: scope with once and blockMode with allow are refused', () => {
    expect(decodeClientMessage('{"type":"verdict","id":"f","action":"allow","remember":"once","scope":"process"}')).toMatchObject({ ok: false, error: { code: 'bad-message' } });
    expect(decodeClientMessage('{"type":"verdict","id":"f","action":"allow","remember":"once","blockMode":"drop"}')).toMatchObject({ ok: false, error: { code: 'bad-message' } });
  });

  test('client verdict: forMs and session ride with remember "always" only; new scopes decode', () => {
    const v = (extra: Record<string, unknown>) => decodeClientMessage(JSON.stringify({ type: 'verdict', id: 'f', action: 'allow', ...extra }));
    expect(v({ remember: 'always', scope: 'domain', forMs: 3_600_000 })).toEqual({ ok: true, message: { type: 'verdict', id: 'f', action: 'allow', remember: 'always', scope: 'domain', forMs: 3_600_000 } });
    expect(v({ remember: 'always', scope: 'port', session: true })).toMatchObject({ ok: true, message: { scope: 'port', session: true } });
    expect(v({ remember: 'process', scope: 'host' })).toMatchObject({ ok: true, message: { remember: 'process', scope: 'host' } });
    expect(v({ remember: 'process', forMs: 1000 })).toMatchObject({ ok: false, error: { code: 'bad-message', message: expect.stringContaining('forMs') } });
    expect(v({ remember: 'once', session: true })).toMatchObject({ ok: false, error: { code: 'bad-message', message: expect.stringContaining('session') } });
    expect(v({ remember: 'always', forMs: 0 })).toMatchObject({ ok: false, error: { message: expect.stringContaining('forMs') } });
    expect(v({ remember: 'always', scope: 'subnet' })).toMatchObject({ ok: false, error: { message: expect.stringContaining('scope') } });
  });

  test('rule endpoint: bad cidr and reversed port range are refused', () => {
    const spec = (endpoint: unknown): string => JSON.stringify({ type: 'rule-add', rule: { action: 'block', duration: { kind: 'always' }, endpoint } });
    expect(decodeClientMessage(spec({ cidr: '10.0.0.0/33' }))).toMatchObject({ ok: false, error: { message: expect.stringContaining('rule endpoint.cidr: is not an address/prefix') } });
    expect(decodeClientMessage(spec({ portRange: [20, 10] }))).toMatchObject({ ok: false, error: { message: expect.stringContaining('rule endpoint.portRange: low 20 is above high 10') } });
    expect(decodeClientMessage(spec({ cidr: '2001:db8::/32', portRange: [10, 20] })).ok).toBe(true);
  });

  test('rule priority and address family: checked where the rule is read', () => {
    const spec = (extra: object): string => JSON.stringify({ type: 'rule-add', rule: { action: 'block', duration: { kind: 'always' }, ...extra } });
    expect(decodeClientMessage(spec({ priority: 7, endpoint: { host: 'example.com', family: 'ipv6' } }))).toMatchObject({ ok: true, message: { rule: { priority: 7, endpoint: { family: 'ipv6' } } } });
    for (const priority of [-1, 1.5, '3', 1_000_000_001]) {
      expect(decodeClientMessage(spec({ priority }))).toMatchObject({ ok: false, error: { message: expect.stringContaining('rule priority: must be a whole number') } });
    }
    expect(decodeClientMessage(spec({ endpoint: { family: 'ipv5' } }))).toMatchObject({ ok: false, error: { message: expect.stringContaining('rule endpoint.family: must be one of') } });
  });

  test('messages of the other direction are unknown types', () => {
    expect(decodeClientMessage(encodeMessage(flow('f')))).toMatchObject({ ok: false, error: { code: 'unknown-type' } });
    expect(decodeExtensionMessage(encodeMessage(clientMessages[0]!))).toMatchObject({ ok: false, error: { code: 'unknown-type' } });
  });

  test('prototype keys on the wire do nothing', () => {
    const result = decodeClientMessage('{"type":"rules-list","__proto__":{"polluted":true},"constructor":{"x":1}}');
    expect(result).toEqual({ ok: true, message: { type: 'rules-list' } });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(decodeClientMessage('{"type":"toString"}')).toMatchObject({ ok: false, error: { code: 'unknown-type' } });
    expect(decodeClientMessage('{"type":"__proto__"}')).toMatchObject({ ok: false, error: { code: 'unknown-type' } });
  });
});

describe('line limit on the sending side', () => {
  test('encodeMessage refuses a line the receiver would drop', () => {
    const huge: Rule[] = Array.from({ length: 2000 }, (_, i) => ({ ...rule, id: `r${i}` }));
    expect(() => encodeMessage({ type: 'rules', rules: huge })).toThrow(MessageTooLongError);
  });

  test('rulesSnapshot splits a large list into lines under the limit that reassemble in order', () => {
    const huge: Rule[] = Array.from({ length: 2000 }, (_, i) => ({ ...rule, id: `r${i}` }));
    const parts = rulesSnapshot(huge, 'q');
    expect(parts.length).toBeGreaterThan(1);
    const lines = parts.map(encodeMessage);
    for (const line of lines) expect(Buffer.byteLength(line) - 1).toBeLessThanOrEqual(MAX_LINE_BYTES);
    const decoded = lines.map((l) => decodeExtensionMessage(l));
    expect(decoded.map((d) => d.ok && d.message.type === 'rules' && d.message.continues === true)).toEqual(parts.map((_, i) => i < parts.length - 1));
    const ids = decoded.flatMap((d) => (d.ok && d.message.type === 'rules' ? d.message.rules.map((r) => r.id) : []));
    expect(ids).toEqual(huge.map((r) => r.id));
    expect(rulesSnapshot([])).toEqual([{ type: 'rules', rules: [] }]);
  });

  test('bytesMessages splits counters', () => {
    const counters = Array.from({ length: 5000 }, (_, i) => ({ id: `flow-${i}`, rx: i * 1000, tx: i }));
    const lines = bytesMessages(counters, 5).map(encodeMessage);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.flatMap((l) => { const d = decodeExtensionMessage(l); return d.ok && d.message.type === 'bytes' ? d.message.counters : []; })).toEqual(counters);
  });
});

describe('the example session in docs/protocol.md', () => {
  const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## 9. Example session'), doc.indexOf('## 10.'));
  const lines = section.split('\n').filter((l) => /^[CE]: /.test(l));

  test('every line decodes as its direction says, except the one shown as an error', () => {
    expect(lines.length).toBeGreaterThan(10);
    const failures: string[] = [];
    let previousError: string | undefined;
    for (const line of lines) {
      const json = line.slice(3);
      const result = line.startsWith('E') ? decodeExtensionMessage(json) : decodeClientMessage(json);
      if (!result.ok) failures.push(result.error.message);
      if (result.ok && result.message.type === 'error' && previousError) expect(result.message.message).toBe(previousError);
      previousError = result.ok ? undefined : result.error.message;
    }
    // Exactly the deliberately bad verdict fails, with the words the example shows.
    expect(failures).toEqual(['verdict message: remember: expected one of "once", "process", "always", got "forever"']);
  });
});

describe('decoders never throw', () => {
  // A small deterministic PRNG so a failure can be replayed.
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const valid = [...extensionMessages, ...clientMessages].map((m) => encodeMessage(m).slice(0, -1));

  test('random bytes, mutated valid messages, hostile shapes', () => {
    const random = rng(20261123);
    const inputs: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.alloc(Math.floor(random() * 300));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
      inputs.push(bytes.toString('latin1'), bytes.toString('utf8'));
    }
    for (let i = 0; i < 5000; i++) {
      const base = valid[Math.floor(random() * valid.length)]!;
      const chars = [...base];
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * chars.length);
        const op = random();
        if (op < 0.4) chars.splice(at, 1);
        else if (op < 0.7) chars[at] = '{}[]":,0-.e\\nulltruefalse'[Math.floor(random() * 24)]!;
        else chars.splice(at, 0, String.fromCharCode(Math.floor(random() * 0x10000)));
      }
      inputs.push(chars.join(''));
    }
    inputs.push('[' .repeat(60_000), '{"a":'.repeat(10_000), '1e999', '"\\ud800"', '{"type":null}', '{"type":{"toString":1}}', '{"type":"flow","flow":[]}', '{"type":"bytes","counters":{"length":5}}', '{"type":"rules","rules":[null]}', '');
    let errors = 0;
    for (const input of inputs) {
      for (const decode of [decodeExtensionMessage, decodeClientMessage]) {
        const result = decode(input);
        expect(typeof result.ok).toBe('boolean');
        if (!result.ok) {
          errors++;
          expect(result.error.code).not.toBe('internal');
          expect(result.error.message.length).toBeGreaterThan(0);
        }
      }
    }
    expect(errors).toBeGreaterThan(inputs.length); // nearly all of it is rejected, none of it throws
  });
});
