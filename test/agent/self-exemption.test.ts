// The agent's own connections pass only for its very process instance: the same PID with another start
// time or another pidfs inode (a recycled PID) is someone else.
import { describe, expect, it } from 'vitest';
import { encodeLinuxToken } from '../../src/protocol/tokens.js';
import { SelfInstance } from '../../src/agent/self-exemption.js';

const self = { pid: 4242, startTime: 1000n, pidfsInode: 77n, execTag: 9 };
const token = (over: Partial<typeof self>) => encodeLinuxToken({ ...self, ...over });

describe('SelfInstance', () => {
  const instance = new SelfInstance(token({}).toString('base64'));

  it('owns its own token, whatever program tag it carries', () => {
    expect(instance.owns(token({}))).toBe(true);
    expect(instance.owns(token({ execTag: 0 }))).toBe(true);
  });

  it('does not own the same PID of another instance, nor a missing or malformed token', () => {
    expect(instance.owns(token({ startTime: 1001n }))).toBe(false);
    expect(instance.owns(token({ pidfsInode: 78n }))).toBe(false);
    expect(instance.owns(token({ pid: 4243 }))).toBe(false);
    expect(instance.owns(undefined)).toBe(false);
    expect(instance.owns(Buffer.alloc(10))).toBe(false);
  });
});
