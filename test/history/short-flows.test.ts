// A flow that ends before the agent's next byte poll (a quick download through the agent) is
// recorded with the bytes it moved — in its row and in its program's and host's minute buckets —
// read from the socket's counters as it closed, not left at 0.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { lines, skipUnlessCapable, spawnIn, waitFor, type Netns } from '../agent/helpers.js';
import { useAgent } from '../agent/fixture.js';

const skip = skipUnlessCapable();
const PORT = 7250;
const SIZE = 3 * 1024 * 1024;

/** Serves SIZE bytes to each connection, then closes it (a download). */
async function downloadServer(ns: Netns): Promise<ChildProcess> {
  const code = `require('net').createServer((c) => { c.on('error', () => {}); c.end(Buffer.alloc(${SIZE}, 7)); }).listen(${PORT}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await lines(child).next((l) => l === 'ready');
  return child;
}

/** Downloads once; prints the bytes received when the server has closed, and stays until its stdin
 *  closes: its owner is still there for the agent's first lookup of it, which hashes node's
 *  executable and can take many seconds on a loaded machine (longer than the recorder waits, so the
 *  buckets also show that a late answer moves them to the program). */
const DOWNLOAD = [process.execPath, '-e', `
  let n = 0; const s = require('net').connect(${PORT}, '127.0.0.1');
  s.on('data', (d) => { n += d.length; }); s.on('end', () => s.end());
  s.on('close', () => console.log('received ' + n));
  s.on('error', (e) => console.log('error ' + e.code));
  process.stdin.resume(); process.stdin.on('end', () => process.exit(0));
`];

interface Recorded {
  rx: number | null;
  dur: number | null;
  ident: number | null;
  host: number | null;
}

describe.skipIf(skip)('short flows in the agent\'s history', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-history-'));
  chmodSync(dir, 0o755);
  const path = join(dir, 'history.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const f = useAgent({
    flags: ['--queue-num', '7414', '--history', path],
    setup: async (ns) => [await downloadServer(ns)],
    rulesFile: { policy: { defaultAction: 'allow', blockMode: 'drop', blockUnpackaged: false, allowPackaged: false }, rules: [
      { id: 'rdownload', action: 'allow', protocol: 'tcp', endpoint: { port: PORT }, duration: { kind: 'always' }, created: 1, hits: 0, enabled: true },
    ] },
  });

  it('a 3 MiB download that ends between two byte polls is recorded with its 3 MiB, in its row and in its minute buckets', async () => {
    const child = spawnIn(f.ns, f.cg, DOWNLOAD);
    const said = await lines(child).next((l) => l.startsWith('received') || l.startsWith('error'), 10_000);
    expect(said).toBe(`received ${SIZE}`);
    const read = <T>(sql: string): T => {
      const db = new Database(path, { readonly: true });
      try {
        return db.prepare(sql).get() as T;
      } finally {
        db.close();
      }
    };
    const row = await waitFor('the ended flow in the history, with its program', () => {
      const r = read<Recorded | undefined>(`SELECT rx, dur, ident, host FROM flows WHERE rport = ${PORT}`);
      return r && r.dur !== null && r.ident !== null ? r : undefined;
    }, 40_000);
    child.stdin!.end();
    // Payload bytes as the socket counted them: exactly what the program read.
    expect(row.rx).toBe(SIZE);
    // The buckets the rankings and graphs read carry them too, under the program (its lookup may
    // answer after the row is written: the buckets wait for it).
    const inBuckets = (): { program: number | null; host: number | null; none: number | null } => ({
      program: read<{ rx: number | null }>(`SELECT sum(rx) AS rx FROM traffic WHERE ident = ${row.ident}`).rx,
      host: read<{ rx: number | null }>(`SELECT sum(t.rx) AS rx FROM host_traffic t JOIN hosts h ON h.id = t.host WHERE h.name = '127.0.0.1'`).rx,
      none: read<{ rx: number | null }>('SELECT sum(rx) AS rx FROM traffic WHERE ident = 0').rx,
    });
    // (traffic sums are written once a second: the start's count may come a batch before the bytes)
    await waitFor('the buckets', () => inBuckets().program === SIZE && inBuckets().host === SIZE, 5_000).catch(() => undefined);
    expect(inBuckets()).toEqual({ program: SIZE, host: SIZE, none: null });
  }, 90_000);
});
