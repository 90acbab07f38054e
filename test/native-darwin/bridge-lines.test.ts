// The lines the macOS bridge sends (native/macos/Tests/FlowtopSharedTests/Fixtures/extension-lines.ndjson)
// must pass flowtop's own protocol v1 decoder. The Swift tests check that the bridge's encoder produces
// exactly these lines — those Swift tests have NOT YET RUN ON A MAC; this half runs here, on Linux.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeExtensionMessage } from '../../src/protocol/codec.js';
import { decodeAuditToken } from '../../src/protocol/tokens.js';

const fixture = new URL('../../native/macos/Tests/FlowtopSharedTests/Fixtures/extension-lines.ndjson', import.meta.url);
const lines = readFileSync(fixture, 'utf8').split('\n').filter((line) => line.trim() !== '');

describe('protocol v1 lines of the macOS bridge', () => {
  it.each(lines.map((line) => [JSON.parse(line).type as string, line]))('a %s line decodes', (_type, line) => {
    const decoded = decodeExtensionMessage(line);
    expect(decoded.ok ? 'ok' : decoded.error).toBe('ok');
  });

  it('announces audit tokens, and each flow token is a 32-byte audit_token_t', () => {
    const hello = decodeExtensionMessage(lines[0]!);
    expect(hello.ok && hello.message.type === 'hello' && hello.message.tokenKind).toBe('darwin-audit-token');
    const flow = decodeExtensionMessage(lines[1]!);
    if (!flow.ok || flow.message.type !== 'flow') throw new Error('the second line must be a flow');
    const token = decodeAuditToken(Buffer.from(flow.message.flow.token!, 'base64'));
    const app = decodeAuditToken(Buffer.from(flow.message.flow.appToken!, 'base64'));
    expect(token).toMatchObject({ pid: 4242, euid: 501, pidversion: 91 });
    expect(app).toMatchObject({ pid: 700, pidversion: 3 });
    // The pid and uid hints are the token's own fields.
    expect(flow.message.flow.pid).toBe(token!.pid);
    expect(flow.message.flow.uid).toBe(token!.euid);
  });

  it('announces rules, and answers rules-list and rule-add with the request\'s ref', () => {
    const hello = decodeExtensionMessage(lines[0]!);
    expect(hello.ok && hello.message.type === 'hello' && hello.message.capabilities).toContain('rules');
    const decoded = lines.map((line) => decodeExtensionMessage(line)).flatMap((d) => (d.ok ? [d.message] : []));
    const list = decoded.find((m) => m.type === 'rules');
    const changed = decoded.find((m) => m.type === 'rule-changed');
    expect(list).toMatchObject({ ref: 'r1', rules: [{ identity: { kind: 'requirement' }, duration: { kind: 'always' } }] });
    expect(list && 'continues' in list ? list.continues : undefined).toBeUndefined();
    expect(changed).toMatchObject({ op: 'added', ref: 'k1', rule: { identity: { label: 'Example' } } });
  });
});
