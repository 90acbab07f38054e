// Flows a rule decided in a queue thread, as that thread hands them to the main thread: a fixed-size
// binary record per flow in one transferable buffer, not a flow object each. Building the objects
// (address strings, base64 tokens) and cloning them between threads, one message per connection, cost
// the queue loop several µs per connection and woke the main thread for each; the main thread decodes
// a batch when someone watches (to publish it), or keeps it undecoded until a client subscribes.
import type { BlockMode, FlowIdentity } from '../protocol/messages.js';
import type { PacketProtocol } from './packet.js';

/** Bytes per flow: packet id 4, protocol/family/direction/flags 4, time 8, local and remote address
 *  16 each, ports 2 each, rule index 2, identity index 2, pid 4, uid 4, token 24. */
export const RECORD = 88;
export const TOKEN_BYTES = 24;
/** Where each field of a record sits (bytes from its start). */
export const AT = { packetId: 0, protocol: 4, family: 5, direction: 6, flags: 7, time: 8, local: 16, remote: 32, localPort: 48, remotePort: 50, rule: 52, identity: 54, pid: 56, uid: 60, token: 64 } as const;
export const PROTOCOLS: readonly PacketProtocol[] = ['tcp', 'udp', 'icmp', 'other'];
/** Bits of the flags byte. */
export const FLAGS = {
  token: 1, pid: 2, uid: 4, blocked: 8,
  /** With `blocked`: the rule's block mode is reject (else drop). */
  reject: 16,
  identity: 32,
} as const;
/** Indexes (rule, identity) are 16 bits: a batch holds at most this many flows. */
const MAX_CAPACITY = 0xffff;

/** What the queue thread knows of one flow its rules decided. */
export interface DecidedFlow {
  packetId: number;
  time: number;
  protocol: PacketProtocol;
  family: 'ipv4' | 'ipv6';
  direction: 'inbound' | 'outbound';
  local: { address: Buffer; port: number };
  remote: { address: Buffer; port: number };
  ruleId: string;
  /** Absent: allowed. */
  block?: BlockMode;
  token?: Buffer;
  pid?: number;
  uid?: number;
  ownerError?: string;
  /** The code identity the rules were matched with (known in the queue thread for this executable);
   *  the same object for every flow of that file, so a batch carries it once. */
  identity?: FlowIdentity;
}

/** One batch as posted (its buffer transferred): decided-records.ts reads it back. */
export interface DecidedBatch {
  /** The queue thread's flow id prefix: a flow's id is prefix + packet id, as for every other flow. */
  idPrefix: string;
  count: number;
  bytes: Uint8Array;
  ruleIds: string[];
  identities: FlowIdentity[];
  /** Rare fields, by record index: why the owner is unknown, a token of another size. */
  extras: Array<[index: number, extra: { ownerError?: string; token?: string }]>;
}

export class DecidedBatchWriter {
  private bytes: Uint8Array;
  private view: DataView;
  private count = 0;
  private ruleIds: string[] = [];
  private ruleIndex = new Map<string, number>();
  private identities: FlowIdentity[] = [];
  private identityIndex = new Map<FlowIdentity, number>();
  private extras: DecidedBatch['extras'] = [];

  constructor(private readonly idPrefix: string, readonly capacity = 256) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) throw new RangeError(`a batch holds 1 to ${MAX_CAPACITY} flows, not ${capacity}`);
    this.bytes = new Uint8Array(capacity * RECORD);
    this.view = new DataView(this.bytes.buffer);
  }

  get length(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** Appends one flow; false when the batch is full (take it first). */
  add(f: DecidedFlow): boolean {
    if (this.full) return false;
    const at = this.count * RECORD;
    const v = this.view;
    let rule = this.ruleIndex.get(f.ruleId);
    if (rule === undefined) {
      rule = this.ruleIds.push(f.ruleId) - 1;
      this.ruleIndex.set(f.ruleId, rule);
    }
    let identity = 0;
    if (f.identity) {
      let i = this.identityIndex.get(f.identity);
      if (i === undefined) {
        i = this.identities.push(f.identity) - 1;
        this.identityIndex.set(f.identity, i);
      }
      identity = i;
    }
    const token = f.token !== undefined && f.token.length === TOKEN_BYTES ? f.token : undefined;
    const flags = (token ? FLAGS.token : 0) | (f.pid !== undefined ? FLAGS.pid : 0) | (f.uid !== undefined ? FLAGS.uid : 0)
      | (f.block ? FLAGS.blocked : 0) | (f.block === 'reject' ? FLAGS.reject : 0) | (f.identity ? FLAGS.identity : 0);
    v.setUint32(at + AT.packetId, f.packetId >>> 0, true);
    v.setUint8(at + AT.protocol, Math.max(0, PROTOCOLS.indexOf(f.protocol)));
    v.setUint8(at + AT.family, f.family === 'ipv6' ? 6 : 4);
    v.setUint8(at + AT.direction, f.direction === 'inbound' ? 1 : 0);
    v.setUint8(at + AT.flags, flags);
    v.setFloat64(at + AT.time, f.time, true);
    this.bytes.fill(0, at + AT.local, at + AT.localPort);
    this.bytes.set(f.local.address.subarray(0, 16), at + AT.local);
    this.bytes.set(f.remote.address.subarray(0, 16), at + AT.remote);
    v.setUint16(at + AT.localPort, f.local.port, true);
    v.setUint16(at + AT.remotePort, f.remote.port, true);
    v.setUint16(at + AT.rule, rule, true);
    v.setUint16(at + AT.identity, identity, true);
    v.setInt32(at + AT.pid, f.pid ?? 0, true);
    v.setUint32(at + AT.uid, f.uid ?? 0, true);
    if (token) this.bytes.set(token, at + AT.token);
    const extra: { ownerError?: string; token?: string } = {};
    if (f.ownerError !== undefined) extra.ownerError = f.ownerError;
    if (f.token !== undefined && !token) extra.token = f.token.toString('base64');
    if (extra.ownerError !== undefined || extra.token !== undefined) this.extras.push([this.count, extra]);
    this.count++;
    return true;
  }

  /** The batch so far (its buffer is handed over: post it with transfer), and a fresh one begins. */
  take(): DecidedBatch {
    const batch: DecidedBatch = {
      idPrefix: this.idPrefix, count: this.count, bytes: this.bytes.subarray(0, this.count * RECORD),
      ruleIds: this.ruleIds, identities: this.identities, extras: this.extras,
    };
    this.bytes = new Uint8Array(this.capacity * RECORD);
    this.view = new DataView(this.bytes.buffer);
    this.count = 0;
    this.ruleIds = [];
    this.ruleIndex = new Map();
    this.identities = [];
    this.identityIndex = new Map();
    this.extras = [];
    return batch;
  }
}
