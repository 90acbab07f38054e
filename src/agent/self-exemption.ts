// The agent's own connections (to the fleet's NATS servers) must not be queued to itself and judged
// like a stranger's: held, they would wait on a link that cannot open until they are decided, and with
// --default block never open. They pass when the owner the queue thread verified for the packet is
// this very process instance: the same PID, start time and pidfs inode as the agent's own token (the
// exec tag is not compared: it only says which program runs, and the instance already fixes that).
// A PID alone is not enough (it can be reused); a name, a path, a port or a mark another program could
// also present is never used. A child the agent starts is another instance and is judged as usual.
import { decodeLinuxToken, type LinuxToken } from '../protocol/tokens.js';

export class SelfInstance {
  private readonly self: LinuxToken;

  /** `tokenBase64`: the agent's own token, made by the main thread at start. */
  constructor(tokenBase64: string) {
    const decoded = decodeLinuxToken(Buffer.from(tokenBase64, 'base64'));
    if (!decoded) throw new Error('the agent could not read its own process token');
    this.self = decoded;
  }

  /** Whether a verified owner's token names this agent's process instance. */
  owns(token: Uint8Array | undefined): boolean {
    if (!token) return false;
    const t = decodeLinuxToken(token);
    return t !== undefined && t.pid === this.self.pid && t.startTime === this.self.startTime && t.pidfsInode === this.self.pidfsInode;
  }
}
