// Attack: an extension (or a process whose name and host it reports) embeds terminal controls in text
// flowtop prints: U+202E (right-to-left override) to make `evil‮txt.exe` read as another name, the
// other bidi controls, and C1 controls such as U+009B (CSI, an escape sequence in one character).
// Every one must reach the screen as `?` and leave `list --json` / `--jsonl` escaped (the data kept
// exact for a program, inert on a terminal).
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runList } from '../../src/commands/list.js';
import { run as runRules } from '../../src/commands/rules.js';
import { flowDetailLines } from '../../src/ui/Details.js';
import { FLOW_COLUMNS } from '../../src/ui/columns.js';
import { TableRow } from '../../src/state/row.js';
import { flow, secure, token } from '../state/fixtures.js';
import { startTestExtension, type TestExtension } from '../app/helpers/test-extension.js';
import { reportAttack } from './report.js';

const CONTROLS = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c', '\u009b', '\u0085', '\u001b', '\u007f'];
const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** In JSON text line feeds separate lines; everything else must be escaped. */
const RAW_IN_JSON = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

let ext: TestExtension | undefined;
afterEach(async () => {
  await ext?.close();
  ext = undefined;
});

function sink(): Writable & { text: string } {
  const out = new Writable({
    write(chunk, _enc, done) {
      out.text += String(chunk);
      done();
    },
  }) as Writable & { text: string };
  out.text = '';
  return out;
}

describe('bidi and C1 controls in text from outside', () => {
  it('never reach the screen raw, nor the JSON output', async () => {
    let tries = 0;
    let bypasses = 0;
    const crashes = 0;
    ext = await startTestExtension();
    for (const [i, ch] of CONTROLS.entries()) {
      const name = `evil${ch}gpj.exe`;
      // The screen: a process name, a host name, and the details pane.
      const row = new TableRow(
        `ext#x${i}`,
        flow({ id: `x${i}`, token: token(i + 1), remoteHost: { name: `host${ch}.example`, source: 'dns' }, ownerError: `owner${ch}` }),
        secure(name, { path: `/tmp/${name}`, user: `u${ch}` }),
        {},
        { rx: 0, tx: 0, rxRate: 0, txRate: 0, bytesTime: undefined },
        1,
      );
      const cells = FLOW_COLUMNS.map((c) => c.cell(row, { now: Date.now(), ascii: false }));
      const details = flowDetailLines(row).map((l) => l.value);
      for (const text of [...cells, ...details]) {
        tries++;
        if (RAW.test(text)) bypasses++;
      }
      ext.flows.set(`x${i}`, flow({ id: `x${i}`, remoteHost: { name: `host${ch}.example`, source: 'dns' }, ownerError: `owner ${ch} missing` }));
    }
    // Script output: one snapshot, then a stream.
    const json = sink();
    expect(await runList({ mode: 'json', sockets: [ext.path], waitMs: 300 }, json)).toBe(0);
    tries++;
    if (RAW_IN_JSON.test(json.text)) bypasses++;
    const parsed = JSON.parse(json.text) as { flows: Array<{ id: string; remote: { host: string } }> };
    // Escaped, not altered: a program reading the JSON gets the exact name back.
    expect(parsed.flows.find((f) => f.id === 'x4')!.remote.host).toBe('host\u202e.example');

    const jsonl = sink();
    const streaming = runList({ mode: 'jsonl', sockets: [ext.path], waitMs: 1 }, jsonl);
    const deadline = Date.now() + 5_000;
    while (!jsonl.text.includes('"x15"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    process.emit('SIGINT');
    expect(await streaming).toBe(0);
    tries++;
    if (RAW_IN_JSON.test(jsonl.text) || !jsonl.text.includes('"x15"')) bypasses++;
    expect(jsonl.text).toContain('host\\u009b.example');

    // A rules file (written by an import, another tool, a person) with controls in a note and a label.
    const dir = mkdtempSync(join(tmpdir(), 'flowtop-bidi-'));
    try {
      const file = join(dir, 'rules.json');
      const rules = CONTROLS.map((ch, i) => ({ id: `r${i}`, action: 'block', identity: { kind: 'path', value: '/usr/bin/curl', label: `cu${ch}rl` }, duration: { kind: 'always' }, enabled: true, created: 1, hits: 0, note: `note ${ch} here` }));
      writeFileSync(file, JSON.stringify({ version: 1, rules }));
      for (const args of [['list', '--rules', file], ['list', '--json', '--rules', file]]) {
        let out = '';
        expect(await runRules(args, { stdout: (t) => (out += t), stderr: () => undefined, env: {} })).toBe(0);
        tries++;
        if (RAW_IN_JSON.test(out) || !out.includes('r15')) bypasses++;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    reportAttack('bidi-and-c1-injection', { tries, bypasses, crashes });
    expect(bypasses).toBe(0);
    expect(crashes).toBe(0);
  }, 20_000);
});
