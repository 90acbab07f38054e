import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../src/protocol/messages.js';
import { readImport } from '../../src/rules/import/index.js';
import { matchRule, type FlowFacts } from '../../src/rules/matcher.js';
import { tempDir } from './helpers.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const NOW = Date.UTC(2026, 0, 15);

function byNote(rules: Rule[], text: string): Rule {
  const rule = rules.find((r) => r.note?.includes(text));
  if (!rule) throw new Error(`no rule noted "${text}" in ${rules.map((r) => r.note).join(', ')}`);
  return rule;
}

function flow(extra: Partial<FlowFacts>): FlowFacts {
  return { trust: 'secure', protocol: 'tcp', direction: 'outbound', remoteAddress: '198.51.100.7', remotePort: 443, ...extra };
}

describe('LuLu export', () => {
  it('maps what maps and says what it could not', async () => {
    const report = await readImport(join(fixtures, 'lulu-export.json'), undefined, NOW);
    expect(report.format).toBe('lulu');
    const rules = report.rules;
    expect(rules).toHaveLength(5);

    // Apple platform code: keyed on its designated requirement, as the macOS attribution reports it.
    const curl = rules.find((r) => r.identity?.kind === 'requirement');
    expect(curl).toMatchObject({ action: 'allow', identity: { kind: 'requirement', value: 'identifier "com.apple.curl" and anchor apple', label: 'curl' }, created: Date.UTC(2025, 2, 2, 8, 14, 5) });
    expect(curl?.endpoint).toBeUndefined();

    // Developer ID app: the signing identifier is not a requirement, so a weaker path rule, said so.
    const editor = rules.find((r) => r.endpoint?.host === 'telemetry.example.com');
    expect(editor).toMatchObject({ action: 'block', identity: { kind: 'path', value: '/Applications/Editor.app/Contents/MacOS/Editor' }, endpoint: { host: 'telemetry.example.com', port: 443 } });
    expect(report.notes.some((n) => n.source.includes('Editor') && n.note.includes('path-only rule (weaker)'))).toBe(true);

    // CIDR, glob → domain, disabled, future expiry.
    expect(rules.find((r) => r.endpoint?.cidr)).toMatchObject({ endpoint: { cidr: '10.0.0.0/8', port: 22 }, action: 'allow' });
    expect(rules.find((r) => r.endpoint?.domain)).toMatchObject({ endpoint: { domain: 'tracker.example' }, action: 'block', enabled: false });
    expect(rules.find((r) => r.endpoint?.address)).toMatchObject({ endpoint: { address: '192.0.2.10', port: 8443 }, duration: { kind: 'until', until: Date.UTC(2099, 0, 1) } });
    expect(report.notes.some((n) => n.note.includes('whole process tree'))).toBe(true);

    // Skipped, each with its reason.
    const reasons = report.skipped.map((s) => s.reason).join('\n');
    expect(report.skipped).toHaveLength(2);
    expect(reasons).toContain('is a regular expression');
    expect(reasons).toContain('it expired at 2025-05-21T08:02:00.000Z');
  });

  it('imported rules match flows the way the LuLu rules meant, and never an unverified process', async () => {
    const { rules } = await readImport(join(fixtures, 'lulu-export.json'), 'lulu', NOW);
    const editorFlow = flow({ path: '/Applications/Editor.app/Contents/MacOS/Editor', identity: 'identifier "com.example.Editor" and anchor apple generic', remoteHost: 'telemetry.example.com' });
    expect(matchRule(rules, editorFlow, NOW)?.action).toBe('block');
    expect(matchRule(rules, { ...editorFlow, trust: 'insecure' }, NOW)).toBeUndefined();
    expect(matchRule(rules, flow({ identity: 'identifier "com.apple.curl" and anchor apple' }), NOW)?.action).toBe('allow');
  });
});

describe('OpenSnitch rule files', () => {
  it('imports a rules folder: maps what maps, skips the rest with reasons', async () => {
    const report = await readImport(join(fixtures, 'opensnitch'), undefined, NOW);
    expect(report.format).toBe('opensnitch');

    const firefox = byNote(report.rules, '000-allow-firefox');
    expect(firefox).toMatchObject({ action: 'allow', identity: { kind: 'path', value: '/usr/lib/firefox/firefox' }, direction: 'outbound', duration: { kind: 'always' } });
    expect(firefox.created).toBe(Date.parse('2024-11-02T10:21:44.918+01:00'));
    expect(report.notes.some((n) => n.source.includes('000-allow-firefox') && n.note.includes('path-only rule (weaker)'))).toBe(true);

    // A list given only as a JSON string in "data".
    expect(byNote(report.rules, 'allow-systemd-resolved-dns')).toMatchObject({
      identity: { kind: 'path', value: '/usr/lib/systemd/systemd-resolved' }, endpoint: { port: 53 }, protocol: 'udp',
    });
    expect(report.notes.some((n) => n.note.includes('precedence'))).toBe(true);

    // OpenSnitch's own "domain and subdomains" pattern becomes a domain rule; reject stays reject.
    expect(byNote(report.rules, 'reject-ads-example-net')).toMatchObject({ action: 'block', blockMode: 'reject', endpoint: { domain: 'ads.example.net' } });

    // An IPv4 network with tcp6 (IPv6) never matched in OpenSnitch: skipped, not widened to IPv4.
    expect(report.rules.some((r) => r.note?.includes('deny-ssh-tool-lan'))).toBe(false);

    // A Go duration runs from the rule's creation; 12 h from 2024-12-07 has passed by 2026.
    const skipped = Object.fromEntries(report.skipped.map((s) => [s.source.replace(/^OpenSnitch rule "([^"]+)".*$/, '$1'), s.reason]));
    expect(skipped['allow-curl-example-12h']).toContain('has passed');
    expect(skipped['allow-any-python']).toContain('regular expressions are not supported');
    expect(skipped['deny-dropper']).toContain('MD5 hash cannot be converted');
    expect(skipped['allow-lan']).toContain('network aliases such as LAN are not supported');
    expect(skipped['allow-user-1000-https']).toContain('until restart');
    expect(skipped['deny-ssh-tool-lan']).toContain('could never match');
    expect(report.rules).toHaveLength(3);
    expect(report.skipped).toHaveLength(6);
  });

  it('a Go duration still running becomes an until rule; host names are normalised', async () => {
    const report = await readImport(join(fixtures, 'opensnitch', 'allow-curl-host-12h.json'), 'opensnitch', Date.parse('2024-12-07T18:00:00Z'));
    expect(report.rules[0]).toMatchObject({ identity: { kind: 'path', value: '/usr/bin/curl' }, endpoint: { host: 'downloads.example.org' }, duration: { kind: 'until', until: Date.parse('2024-12-08T00:00:00Z') } });
  });

  it('the imported domain rule matches subdomains but not look-alikes', async () => {
    const { rules } = await readImport(join(fixtures, 'opensnitch', 'reject-ads.json'), undefined, NOW);
    expect(matchRule(rules, flow({ remoteHost: 'x.ads.example.net' }), NOW)?.blockMode).toBe('reject');
    expect(matchRule(rules, flow({ remoteHost: 'badads.example.net' }), NOW)).toBeUndefined();
  });
});

describe('format detection and errors', () => {
  it('refuses a file whose format it cannot tell, and says how to choose', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'x.json'), JSON.stringify({ hello: 'world' }));
    await expect(readImport(join(dir, 'x.json'), undefined, NOW)).rejects.toMatchObject({ message: expect.stringContaining('cannot tell the format'), nextStep: expect.stringContaining('--format') });
    writeFileSync(join(dir, 'bad.json'), '{"version": 1, "rules": [');
    await expect(readImport(join(dir, 'bad.json'), undefined, NOW)).rejects.toThrow(/not valid JSON/);
    await expect(readImport(join(dir, 'x.json'), 'lulu', NOW)).rejects.toThrow(/LuLu export maps each process key to a list/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('OpenSnitch rules without a name', () => {
  it('take the name "" as opensnitchd does: tried first, and a later one replaces an earlier one', async () => {
    const { importOpenSnitch } = await import('../../src/rules/import/index.js');
    const rule = (action: string, host: string) => ({ enabled: true, action, duration: 'always', operator: { type: 'simple', operand: 'dest.host', data: host } });
    const report = importOpenSnitch([
      { source: 'a.json', value: rule('deny', 'first.example') },
      { source: 'b.json', value: rule('deny', 'second.example') },
      { source: 'c.json', value: { ...rule('deny', 'named.example'), name: 'named' } },
      { source: 'd.json', value: 42 },
    ], NOW);
    expect(report.rules.map((r) => [r.endpoint?.host, r.priority])).toEqual([['second.example', 2], ['named.example', 1]]);
    expect(report.skipped.map((s) => s.source)).toEqual(['OpenSnitch rule #0 (a.json)', 'OpenSnitch rule #0 (d.json)']);
  });
});
