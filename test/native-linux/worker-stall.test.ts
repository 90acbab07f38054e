// The worker backend's watchdog, with a real worker thread that never answers (as one stuck reading
// an executable on a hung network file system would).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Attributor } from '../../src/attribution/attributor.js';
import { createLinuxBackend } from '../../src/native/linux/backend.js';

const dir = mkdtempSync(join(tmpdir(), 'flowtop-stall-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.runIf(process.platform === 'linux')('Linux backend watchdog', () => {
  it('replaces a worker that stops answering and fails its lookups with the reason, uncached', async () => {
    const silent = join(dir, 'silent-worker.mjs');
    writeFileSync(silent, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => {});\n");
    const backend = createLinuxBackend({ thread: pathToFileURL(silent), stallMs: 200 });
    const started = Date.now();
    await expect(backend.resolve([Buffer.alloc(24, 1)])).rejects.toThrow(/made no progress/);
    expect(Date.now() - started).toBeLessThan(5000);

    const attributor = new Attributor(backend, { windowMs: 0 });
    const token = Buffer.alloc(24, 2).toString('base64');
    const update = new Promise((resolve) => attributor.updates$.subscribe(resolve));
    attributor.request(token);
    attributor.flush();
    expect(await update).toEqual([{ key: token, attribution: expect.objectContaining({ trust: 'insecure', reason: expect.objectContaining({ message: expect.stringContaining('made no progress') }) }) }]);
    expect(attributor.stats().cached).toBe(0);
    attributor.close();
  });
});
