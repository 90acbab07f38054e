// Imported rule sets decide flows as the firewall they came from did. For each fixture set
// (test/rules/fixtures/decisions/README.md): import it with `flowtop rules import`, then ask
// `flowtop rules test --json` about flows whose decision in the original tool is known from its
// matching code (opensnitchd rule/loader.go FindFirstMatch; LuLu Extension/Rules.m find:).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { TestOutcome } from '../../src/commands/rules-test.js';
import { runRules } from '../../src/commands/rules.js';
import type { Rule } from '../../src/protocol/messages.js';
import { tempDir } from './helpers.js';

const fixtures = fileURLToPath(new URL('./fixtures/decisions/', import.meta.url));
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function rules(args: string[], now = NOW): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await runRules(args, { stdout: (t) => (out += t), stderr: () => {}, now: () => now, env: {} });
  return { code, out };
}

/** Imports a fixture into a fresh rules file; returns the file and what the import printed. */
async function imported(fixture: string): Promise<{ file: string; out: string; list: Rule[] }> {
  const dir = tempDir();
  dirs.push(dir);
  const file = join(dir, 'rules.json');
  const { out } = await rules(['import', join(fixtures, fixture), '--rules', file]);
  const list = JSON.parse((await rules(['list', '--json', '--rules', file])).out) as Rule[];
  return { file, out, list };
}

/** What the original tool does: allow, block, reject, or none (no rule: it would ask, or apply its default). */
type Expected = 'allow' | 'block' | 'reject' | 'none';
type Flow = [why: string, flags: string[], expected: Expected];

async function decision(file: string, flags: string[], now = NOW): Promise<{ got: Expected; outcome: TestOutcome }> {
  const { out } = await rules(['test', '--rules', file, '--json', ...flags], now);
  const outcome = JSON.parse(out) as TestOutcome;
  const got: Expected = outcome.decidedBy === 'policy' ? 'none' : outcome.blockMode === 'reject' ? 'reject' : outcome.action;
  return { got, outcome };
}

function checkFlows(fixture: string, flows: Flow[]): void {
  let file = '';
  it(`imports ${fixture}`, async () => {
    file = (await imported(fixture)).file;
  });
  it.each(flows)('%s', async (_why, flags, expected) => {
    const { got, outcome } = await decision(file, flags);
    expect(got, `decided by ${outcome.rule ? JSON.stringify(outcome.rule) : outcome.policy?.reason}`).toBe(expected);
  });
}

const NODE = ['--path', '/usr/bin/node'];
const FIREFOX = ['--path', '/usr/lib/firefox/firefox'];
const RESOLVED = ['--path', '/usr/lib/systemd/systemd-resolved'];
const CURL = ['--path', '/usr/bin/curl'];
const SSH = ['--path', '/usr/bin/ssh'];

describe('OpenSnitch: a whole /etc/opensnitchd/rules folder', () => {
  checkFlows('opensnitch-etc', [
    ['deny wins: node is allowed everywhere, checkpoint.prisma.io is denied for everyone', [...NODE, '--host', 'checkpoint.prisma.io', '--address', '104.18.10.1', '--port', '443'], 'block'],
    ['node elsewhere is allowed', [...NODE, '--host', 'registry.npmjs.org', '--address', '104.16.1.35', '--port', '443'], 'allow'],
    ['the first precedence rule by name beats a later deny', [...FIREFOX, '--host', 'incoming.telemetry.mozilla.org', '--address', '34.120.208.123', '--port', '443'], 'allow'],
    ['the later deny decides where the precedence rule does not match', [...FIREFOX, '--host', 'incoming.telemetry.mozilla.org', '--address', '34.120.208.123', '--port', '80'], 'block'],
    ['no rule for firefox on port 80 elsewhere', [...FIREFOX, '--host', 'www.example.com', '--address', '93.184.215.14', '--port', '80'], 'none'],
    ['udp means IPv4: the resolver over IPv4', [...RESOLVED, '--address', '9.9.9.9', '--port', '53', '--protocol', 'udp'], 'allow'],
    ['udp means IPv4: the resolver over IPv6 is not covered', [...RESOLVED, '--address', '2620:fe::fe', '--port', '53', '--protocol', 'udp'], 'none'],
    ['tcp6 means IPv6: curl over IPv4 is not allowed by it, and its deny decides', [...CURL, '--host', 'downloads.example.com', '--address', '93.184.215.14', '--port', '443'], 'block'],
    ['tcp6 allows curl over IPv6', [...CURL, '--host', 'www.example.net', '--address', '2001:db8::10', '--port', '443'], 'allow'],
    ['a deny beats the tcp6 allow where both match', [...CURL, '--host', 'downloads.example.com', '--address', '2001:db8::20', '--port', '443'], 'block'],
    ['000-allow-localhost (precedence) comes first by name', [...CURL, '--host', 'downloads.example.com', '--address', '127.0.0.1', '--port', '443'], 'allow'],
    ['reject stays reject', [...SSH, '--host', 'x.ads.example.net', '--address', '198.51.100.20', '--port', '443'], 'reject'],
    ['a network + port range + tcp deny', [...SSH, '--address', '192.168.1.10', '--port', '2222'], 'block'],
    ['outside the port range', [...SSH, '--address', '192.168.1.10', '--port', '22'], 'none'],
    ['two files with one rule name: the later file (wget-old.json) replaced the other', ['--path', '/usr/bin/wget', '--host', 'ftp.gnu.org', '--address', '209.51.188.20', '--port', '443'], 'block'],
    ['the UI\'s old domain pattern without $ still blocks the domain', [...SSH, '--host', 'tracker.example.org', '--address', '198.51.100.30', '--port', '443'], 'block'],
    ['... and its subdomains', [...SSH, '--host', 'a.tracker.example.org', '--address', '198.51.100.31', '--port', '443'], 'block'],
  ]);

  it('reports what it could not import, and imports the rest', async () => {
    const { out, list } = await imported('opensnitch-etc');
    expect(out).toMatch(/skipped: OpenSnitch file half-written\.json: not valid JSON.*opensnitchd skips such a file too/);
    expect(out).toMatch(/skipped: OpenSnitch rule "wget" \(wget-new\.json\): replaced by the rule of the same name in wget-old\.json/);
    expect(out).toMatch(/skipped: OpenSnitch rule "allow-python" .*regular expressions are not supported/);
    expect(out).toMatch(/skipped: OpenSnitch rule "deny-git-mirrors" .*regular expressions are not supported/);
    expect(out).toMatch(/note: OpenSnitch rule "deny-curl" .*"nolog" is not kept/);
    expect(out).toMatch(/note: OpenSnitch rule "deny-tracker-old-ui" .*no closing "\$"/);
    expect(out).not.toContain('README');
    expect(list).toHaveLength(12);
    // A description on two lines is kept in the rule, but `rules list` shows it on one line.
    expect(list.find((r) => r.note?.includes('deny-prisma-checkpoint'))?.note).toContain('no telemetry\nfor anyone');
  });

  it('rules list keeps one line per rule even when a note has line breaks', async () => {
    const { file } = await imported('opensnitch-etc');
    const { out } = await rules(['list', '--rules', file]);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(2 + 12);
    expect(out).toContain('no telemetry for anyone');
    expect(lines[1]).toMatch(/^ID +ACTION +PRIO +PROCESS/);
  });

});

describe('after an import, a rule of yours outranks imported ones only with a higher priority', () => {
  it('rules add --priority', async () => {
    const { file, list } = await imported('opensnitch-etc');
    const flow = [...NODE, '--host', 'checkpoint.prisma.io', '--address', '104.18.10.1', '--port', '443'];
    await rules(['add', '--allow', '--path', '/usr/bin/node', '--host', 'checkpoint.prisma.io', '--rules', file]);
    expect((await decision(file, flow)).got).toBe('block');
    const top = Math.max(...list.map((r) => r.priority ?? 0));
    await rules(['add', '--allow', '--path', '/usr/bin/node', '--host', 'checkpoint.prisma.io', '--port', '443', '--priority', String(top + 1), '--rules', file]);
    expect((await decision(file, flow)).got).toBe('allow');
  });
});

describe('OpenSnitch: files exported by its UI (false fields left out)', () => {
  const THUNDERBIRD = ['--path', '/usr/lib/thunderbird/thunderbird'];
  checkFlows('opensnitch-ui-export', [
    ['a deny exported without "enabled" is disabled, as opensnitchd reads it', [...THUNDERBIRD, '--host', 'imap.example.com', '--address', '192.0.2.143', '--port', '143'], 'allow'],
    ['the enabled allow decides', [...THUNDERBIRD, '--host', 'imap.example.com', '--address', '192.0.2.143', '--port', '993'], 'allow'],
    ['a udp (IPv4) deny for port 53', [...RESOLVED, '--address', '9.9.9.9', '--port', '53', '--protocol', 'udp'], 'block'],
    ['udp6 with precedence allows the resolver over IPv6; the IPv4 deny does not apply', [...RESOLVED, '--address', '2620:fe::fe', '--port', '53', '--protocol', 'udp'], 'allow'],
    ['nobody else over IPv6', ['--path', '/usr/bin/dig', '--address', '2620:fe::fe', '--port', '53', '--protocol', 'udp'], 'none'],
  ]);

  it('the disabled rule is imported disabled, not left out', async () => {
    const { list } = await imported('opensnitch-ui-export');
    expect(list.find((r) => r.note?.includes('deny-thunderbird-imap-plain'))).toMatchObject({ enabled: false, action: 'block' });
    expect(list.find((r) => r.note?.includes('allow-thunderbird'))).toMatchObject({ enabled: true });
  });
});

describe('OpenSnitch: an enabled rule and its disabled twin', () => {
  checkFlows('opensnitch-twins', [
    ['the enabled twin decides', ['--path', '/usr/bin/chromium', '--host', 'www.example.org', '--address', '93.184.215.14', '--port', '443'], 'block'],
  ]);
  it('neither twin is dropped as a copy of the other', async () => {
    const { list } = await imported('opensnitch-twins');
    expect(list.map((r) => r.enabled).sort()).toEqual([false, true]);
  });
});

// The SOURCE of an import's "note: SOURCE: …" and "skipped: SOURCE: …" lines: `OpenSnitch rule "NAME"
// (FILE)` or `LuLu rule "NAME" (KEY#N)`, where a LuLu key may hold parentheses itself.
function sources(out: string, kind: 'note' | 'skipped'): string[] {
  const source = /(?:OpenSnitch|LuLu) rule "[^"]*" \((?:[^\n]*?#\d+|[^)\n]*)\)/.source;
  return [...out.matchAll(new RegExp(`^  ${kind}: (${source})`, 'gm'))].map((m) => m[1] as string);
}

describe('a note is never given for a rule that is then skipped', () => {
  it.each(['opensnitch-etc', 'lulu-4.json'])('%s', async (fixture) => {
    const { out } = await imported(fixture);
    const skipped = new Set(sources(out, 'skipped'));
    const noted = sources(out, 'note');
    expect(skipped.size).toBeGreaterThan(0);
    expect(noted.length).toBeGreaterThan(0);
    for (const source of noted) expect(skipped.has(source), source).toBe(false);
  });
});

const CHROME = ['--path', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome', '--identity', 'identifier "com.google.Chrome" and anchor apple generic and certificate leaf[subject.OU] = EQHXZ8M8AV'];
const LULU_CURL = ['--path', '/usr/bin/curl', '--identity', 'identifier "com.apple.curl" and anchor apple'];
const SYNC = ['--path', '/Users/me/bin/sync-tool', '--identity', `sha256:${'5e'.repeat(32)}`];

describe('LuLu: an export as LuLu 4 writes it', () => {
  checkFlows('lulu-4.json', [
    ['a global block of a host (partial match) beats Chrome\'s "allow anything"', [...CHROME, '--host', 'tracker.example.net', '--address', '203.0.113.5', '--port', '443'], 'block'],
    ['Chrome elsewhere is allowed', [...CHROME, '--host', 'www.example.com', '--address', '93.184.215.14', '--port', '443'], 'allow'],
    ['LuLu filters outbound flows only', [...CHROME, '--address', '203.0.113.9', '--port', '51000', '--direction', 'inbound'], 'none'],
    ['the global block also beats curl\'s allow', [...LULU_CURL, '--host', 'tracker.example.net', '--address', '203.0.113.5', '--port', '443'], 'block'],
    ['Apple platform code is matched by its requirement', [...LULU_CURL, '--host', 'example.com', '--address', '93.184.215.14', '--port', '443'], 'allow'],
    ['a directory rule covers every program under the folder', ['--path', '/Applications/Utilities/Sync Helper.app/Contents/MacOS/Sync Helper', '--host', 'example.com', '--address', '93.184.215.14', '--port', '443'], 'block'],
    ['a rule saved with an app-bundle path covers the program inside the bundle', ['--path', '/Applications/OpenMTP.app/Contents/MacOS/OpenMTP', '--host', 'github.com', '--address', '140.82.112.3', '--port', '443'], 'block'],
    ['Apple\'s own App Store app (not "anchor apple") is still matched', ['--path', '/Applications/Pages.app/Contents/MacOS/Pages', '--identity', '(anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.9] /* exists */) and identifier "com.apple.iWork.Pages"', '--host', 'www.icloud.com', '--address', '17.253.144.10', '--port', '443'], 'block'],
    ['two partial matches: the later rule wins, whatever is more specific', [...SYNC, '--host', 'updates.example.com', '--address', '198.51.100.7', '--port', '443'], 'allow'],
    ['the host block where the later port rule does not match', [...SYNC, '--host', 'updates.example.com', '--address', '198.51.100.7', '--port', '80'], 'block'],
    ['an exact address-and-port rule beats a later partial one', [...SYNC, '--address', '10.0.0.5', '--port', '22'], 'allow'],
    ['the CIDR block elsewhere in it', [...SYNC, '--address', '10.0.0.6', '--port', '22'], 'block'],
    ['a disabled rule decides nothing', [...SYNC, '--host', 'backup.example.com', '--address', '192.0.2.87', '--port', '873'], 'none'],
  ]);

  it('keys rules on the code where the export allows it, and says where it cannot', async () => {
    const { out, list } = await imported('lulu-4.json');
    const pages = list.find((r) => r.identity?.label === 'Pages');
    expect(pages?.identity).toMatchObject({ kind: 'path', value: '/Applications/Pages.app/Contents/MacOS/Pages' });
    expect(list.find((r) => r.identity?.label === 'OpenMTP')?.identity).toMatchObject({ kind: 'path', value: '/Applications/OpenMTP.app/' });
    expect(list.find((r) => r.identity?.label === 'Utilities')?.identity).toMatchObject({ kind: 'path', value: '/Applications/Utilities/' });
    expect(out).toMatch(/note: LuLu rule "OpenMTP" .*matched it by its signature \(org\.example\.OpenMTP, Developer ID\).*folder rule/);
    expect(out).toMatch(/note: LuLu rule "Pages" .*Apple, through the App Store/);
    for (const rule of list) expect(rule.direction).toBe('outbound');
  });
});

describe('LuLu: an export written by LuLu 2.9.7 to 3.9.0 (expiry under a second "creation" key)', () => {
  const NC = ['--path', '/usr/bin/nc', '--identity', 'identifier "com.apple.nc" and anchor apple'];
  checkFlows('lulu-3.9.0.json', [
    ['an expiring block decides until it expires', [...NC, '--host', 'evil.example.org', '--address', '198.51.100.66', '--port', '443'], 'block'],
    ['a rule that has expired is not imported', [...NC, '--host', 'old.example.org', '--address', '198.51.100.67', '--port', '443'], 'none'],
    ['a global allow of a host and port', ['--path', '/usr/sbin/timed', '--host', 'time.apple.com', '--address', '17.253.4.125', '--port', '123', '--protocol', 'udp'], 'allow'],
    ['0.0.0.0/0 is any IPv4 address', ['--path', '/usr/local/bin/legacy-agent', '--address', '198.51.100.1', '--port', '8080'], 'block'],
    ['... and no IPv6 one', ['--path', '/usr/local/bin/legacy-agent', '--address', '2001:db8::1', '--port', '8080'], 'none'],
  ]);

  it('reads the creation time and the expiry apart', async () => {
    const { file, list, out } = await imported('lulu-3.9.0.json');
    const evil = list.find((r) => r.endpoint?.host === 'evil.example.org');
    expect(evil).toMatchObject({ created: Date.parse('2024-02-01T12:00:00+01:00'), duration: { kind: 'until', until: Date.parse('2099-01-01T00:00:00Z') } });
    expect(out).toMatch(/skipped: LuLu rule "nc" .*it expired at 2024-03-01/);
    const after = await decision(file, ['--path', '/usr/bin/nc', '--identity', 'identifier "com.apple.nc" and anchor apple', '--host', 'evil.example.org', '--address', '198.51.100.66', '--port', '443'], Date.parse('2099-01-02T00:00:00Z'));
    expect(after.got).toBe('none');
  });
});
