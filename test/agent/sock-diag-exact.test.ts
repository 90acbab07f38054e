// The exact lookup never mistakes the listener for a connection that is gone, and a destroy never
// takes down a server's listener. Run inside a network namespace the test creates: a script there
// (the compiled sources) makes the sockets, queries sock_diag and reports what it saw.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST, Netns, buildAgent, removeBuild, skipUnlessCapable } from './helpers.js';

const skip = skipUnlessCapable();

const SCRIPT = `
import net from 'node:net';
import { once } from 'node:events';
import { SockDiag, addressBytes } from './native/linux/sock-diag.js';
import { SockDiagDumper } from './native/linux/sock-diag-dump.js';
const lo = addressBytes('127.0.0.1');
const out = {};
const server = net.createServer((s) => { s.on('error', () => {}); s.on('data', () => {}); }).listen(7400, '127.0.0.1');
await once(server, 'listening');
const connect = async () => { const c = net.connect(7400, '127.0.0.1'); await once(c, 'connect'); return c; };
const diag = new SockDiag();
const dumper = new SockDiagDumper();
// A live connection: found, from both ends; the dumper's lookup (with counters) agrees.
const live = await connect();
live.write('hello');
await new Promise((r) => setTimeout(r, 50));
const liveTuple = { protocol: 'tcp', local: { address: lo, port: live.localPort }, remote: { address: lo, port: 7400 } };
const serverSide = { protocol: 'tcp', local: { address: lo, port: 7400 }, remote: { address: lo, port: live.localPort } };
out.liveState = diag.lookup(liveTuple)?.state;
out.serverSideState = diag.lookup(serverSide)?.state;
const counted = dumper.lookup(liveTuple);
out.dumperTx = counted?.tx;
out.dumperCookieMatches = counted !== undefined && BigInt(counted.cookie) === diag.lookup(liveTuple).cookie;
// A destroy naming another socket's cookie is refused; the connection survives.
out.destroyWrongCookie = diag.destroy(liveTuple, diag.lookup(liveTuple).cookie + 12345n);
out.liveAfterWrongCookie = diag.lookup(liveTuple)?.state;
// A connection reset away: its tuple now reaches only the listener's fallback answer.
const gone = await connect();
const goneServerSide = { protocol: 'tcp', local: { address: lo, port: 7400 }, remote: { address: lo, port: gone.localPort } };
gone.resetAndDestroy();
await new Promise((r) => setTimeout(r, 100));
out.goneLookup = diag.lookup(goneServerSide) ?? null;
out.goneDumperLookup = dumper.lookup(goneServerSide) ?? null;
out.goneListener = diag.lookup(goneServerSide, { listener: true })?.state;
out.goneDestroy = diag.destroy(goneServerSide);
// The listener still accepts.
try { const again = await connect(); out.afterDestroy = 'connected'; again.destroy(); } catch (e) { out.afterDestroy = e.code; }
out.realDestroy = diag.destroy(liveTuple);
diag.close(); dumper.close(); live.destroy(); server.close();
console.log(JSON.stringify(out));
`;

describe.skipIf(skip)('sock_diag exact lookup in a namespace', () => {
  let ns: Netns;
  beforeAll(() => {
    buildAgent();
    ns = new Netns();
    writeFileSync(join(DIST, 'exact-check.mjs'), SCRIPT);
  }, 60_000);
  afterAll(() => {
    ns?.delete();
    removeBuild();
  });

  it('refuses the LISTEN fallback for a gone connection; destroy leaves the listener alive', () => {
    const r = spawnSync(ns.enter[0]!, [...ns.enter.slice(1), process.execPath, join(DIST, 'exact-check.mjs')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out['liveState']).toBe(1); // ESTABLISHED
    expect(out['serverSideState']).toBe(1);
    expect(out['dumperTx']).toBe(5);
    expect(out['dumperCookieMatches']).toBe(true);
    expect(out['destroyWrongCookie']).toBe(false);
    expect(out['liveAfterWrongCookie']).toBe(1);
    expect(out['goneLookup']).toBeNull();
    expect(out['goneDumperLookup']).toBeNull();
    expect(out['goneListener']).toBe(10); // asked for explicitly (an inbound SYN's owner)
    expect(out['goneDestroy']).toBe(false);
    expect(out['afterDestroy']).toBe('connected');
    expect(out['realDestroy']).toBe(true);
  }, 30_000);
});
