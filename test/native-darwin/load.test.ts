// The macOS layer on a machine that is not a Mac: importing it loads nothing, and asking for the real
// bindings fails with a sentence, not a crash inside koffi.
// (On a Mac this file skips itself; real.test.ts runs there instead — NOT YET RUN ON A MAC.)
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe.skipIf(process.platform !== 'linux')('the darwin layer off macOS', () => {
  it('imports without loading koffi or any framework', async () => {
    // koffi is a native addon: once loaded, its .node file is mapped into this process.
    const koffiMapped = (): boolean => readFileSync('/proc/self/maps', 'utf8').includes('koffi');
    expect(koffiMapped()).toBe(false);
    const mod = await import('../../src/native/darwin/bindings.js');
    await import('../../src/native/darwin/backend.js');
    expect(typeof mod.loadDarwinBindings).toBe('function');
    expect(koffiMapped()).toBe(false);
  });

  it('refuses to bind the real frameworks, naming the platform', async () => {
    const { loadDarwinBindings } = await import('../../src/native/darwin/bindings.js');
    const { createDarwinBackend } = await import('../../src/native/darwin/backend.js');
    expect(() => loadDarwinBindings()).toThrow(`only loads on macOS (this is ${process.platform})`);
    expect(() => createDarwinBackend()).toThrow(/only loads on macOS/);
  });
});
