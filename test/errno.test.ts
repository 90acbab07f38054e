// A catch takes the failure it expects and lets every other one through.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GONE, errnoCode, expectErrno } from '../src/errno.js';
import { readProcNet } from '../src/native/linux/proc-net.js';

describe('expectErrno', () => {
  it('returns for the errnos named and rethrows any other error, system or not', () => {
    const gone = Object.assign(new Error('gone'), { code: 'ESRCH' });
    expect(() => expectErrno(gone, GONE)).not.toThrow();
    const busy = Object.assign(new Error('too many files'), { code: 'EMFILE' });
    expect(() => expectErrno(busy, GONE)).toThrow(busy);
    const bug = new TypeError('x is undefined');
    expect(() => expectErrno(bug, GONE)).toThrow(bug);
    expect(() => expectErrno('a string', GONE)).toThrow();
    expect(errnoCode(Object.assign(new Error('not an errno'), { code: 'ERR_INVALID_ARG_TYPE' }))).toBeUndefined();
  });
});

describe('reading /proc/net', () => {
  it('counts a missing file as no sockets, but does not hide a file it cannot read for another reason', () => {
    const root = mkdtempSync(join(tmpdir(), 'flowtop-proc-net-'));
    try {
      writeFileSync(join(root, 'tcp'), '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n');
      expect(readProcNet(root)).toEqual({ sockets: [], malformed: 0 });
      mkdirSync(join(root, 'udp'));
      expect(() => readProcNet(root)).toThrow(/EISDIR/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
