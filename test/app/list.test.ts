// `flowtop list --json/--jsonl` against a test extension on a real socket: the same table state as
// the TUI, rendered as JSON.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { runList } from '../../src/commands/list.js';
import { run as runTui } from '../../src/commands/tui.js';
import { UserError } from '../../src/errors.js';
import { flow, token } from '../state/fixtures.js';
import { startTestExtension, type TestExtension } from './helpers/test-extension.js';

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

describe('flowtop list', () => {
  it('--json prints one snapshot with flows, states and attributions', async () => {
    ext = await startTestExtension();
    ext.flows.set('a1', flow({ id: 'a1', token: token(1), remote: { address: '203.0.113.1', port: 443 }, pending: { deadline: Date.now() + 60_000 } }));
    ext.flows.set('a2', flow({ id: 'a2', pid: 77, ownerError: 'no socket owner found' }));
    const out = sink();
    const code = await runList({ mode: 'json', sockets: [ext.path], waitMs: 300 }, out);
    expect(code).toBe(0);
    const snap = JSON.parse(out.text) as { counts: { live: number; pending: number }; flows: Array<{ id: string; state: string; attribution: { trust: string; why?: string } }>; sources: Array<{ status: string }> };
    expect(snap.counts).toMatchObject({ live: 2, pending: 1 });
    expect(snap.sources[0]!.status).toBe('connected');
    const a1 = snap.flows.find((f) => f.id === 'a1')!;
    expect(a1.state).toBe('pending');
    // The replay backend has no record for this token: not secure, with the reason.
    expect(a1.attribution.trust).toBe('insecure');
    const a2 = snap.flows.find((f) => f.id === 'a2')!;
    expect(a2.attribution.why).toContain('no socket owner found');
  });

  it('--jsonl streams a line per flow change', async () => {
    ext = await startTestExtension();
    const out = sink();
    const running = runList({ mode: 'jsonl', sockets: [ext.path], waitMs: 1 }, out);
    const deadline = Date.now() + 5_000;
    // Wait until connected (the server has a client), then send flows.
    while (Date.now() < deadline) {
      ext.addFlow(flow({ id: `j${Date.now()}`, remote: { address: '198.51.100.2', port: 53 }, protocol: 'udp' }));
      if (out.text.includes('198.51.100.2')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    process.emit('SIGINT');
    expect(await running).toBe(0);
    const first = JSON.parse(out.text.split('\n')[0]!) as { remote: { address: string }; protocol: string };
    expect(first).toMatchObject({ remote: { address: '198.51.100.2' }, protocol: 'udp' });
  });

  it('without a terminal, the TUI says to use --once --json', async () => {
    // The test runner's stdin/stdout are not terminals, as in a pipe.
    expect(process.stdout.isTTY && process.stdin.isTTY).toBeFalsy();
    const error = await runTui(['--socket', '/nonexistent/flowtop.sock']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toBe('flowtop needs a terminal on stdin and stdout');
    expect((error as UserError).nextStep).toContain('flowtop --once --json');
  });

  it('rejects bad flags with a usage error', async () => {
    await expect(runTui(['--max-flows', '0'])).rejects.toThrow(/--max-flows needs a positive whole number/);
    await expect(runTui(['--once'])).rejects.toThrow(/--once needs --json/);
  });
});
