// Flows a rule allowed while no client watched, as the queue threads hand them to the main thread: a
// fixed-size binary record per flow in one transferable buffer, not a flow object each. Building the
// objects (address strings, base64 tokens) and cloning them between threads cost the queue loop several
// µs per connection; the main thread decodes them only when a client subscribes or the store is pruned.
import type { Endpoint, FlowRecord, Verdict } from '../protocol/messages.js';
import { formatAddress } from '../net/address.js';
import type { PacketProtocol } from './packet.js';

/** Bytes per flow: packet id 4, protocol/family/direction/flags 4, time 8, local and remote address
 *  16 each, ports 2 each, rule index 2, pad 2, pid 4, uid 4, token 24. */
const RECORD = 88;
const TOKEN_BYTES = 24;
const PROTOCOLS: readonly PacketProtocol[] = ['tcp', 'udp', 'icmp', 'other'];
const HAS_TOKEN = 1;
const HAS_PID = 2;
const HAS_UID = 4;

/** What the queue thread knows of one allowed flow. */
export interface UnwatchedFlow {
  packetId: number;
  time: number;
  protocol: PacketProtocol;
  family: 'ipv4' | 'ipv6';
  direction: 'inbound' | 'outbound';
  local: { address: Buffer; port: number };
  remote: { address: Buffer; port: number };
  ruleId: string;
  token?: Buffer;
  pid?: number;
  uid?: number;
  ownerError?: string;
}

/** One batch as posted (its buffer transferred): decodeUnwatched turns it back into flows. */
export interface UnwatchedBatch {
  /** The queue thread's flow id prefix: a flow's id is prefix + packet id, as for every other flow. */
  idPrefix: string;
  count: number;
  bytes: Uint8Array;
  ruleIds: string[];
  /** Rare fields, by record index: why the owner is unknown, a token of another size. */
  extras: Array<[index: number, extra: { ownerError?: string; token?: string }]>;
}

export class UnwatchedBatchWriter {
  private bytes: Uint8Array;
  private view: DataView;
  private count = 0;
  private ruleIds: string[] = [];
  private extras: UnwatchedBatch['extras'] = [];

  constructor(private readonly idPrefix: string, readonly capacity = 256) {
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
  add(f: UnwatchedFlow): boolean {
    if (this.full) return false;
    const at = this.count * RECORD;
    const v = this.view;
    let rule = this.ruleIds.indexOf(f.ruleId);
    if (rule < 0) rule = this.ruleIds.push(f.ruleId) - 1;
    const token = f.token !== undefined && f.token.length === TOKEN_BYTES ? f.token : undefined;
    v.setUint32(at, f.packetId >>> 0, true);
    v.setUint8(at + 4, PROTOCOLS.indexOf(f.protocol));
    v.setUint8(at + 5, f.family === 'ipv6' ? 6 : 4);
    v.setUint8(at + 6, f.direction === 'inbound' ? 1 : 0);
    v.setUint8(at + 7, (token ? HAS_TOKEN : 0) | (f.pid !== undefined ? HAS_PID : 0) | (f.uid !== undefined ? HAS_UID : 0));
    v.setFloat64(at + 8, f.time, true);
    this.bytes.fill(0, at + 16, at + 48);
    this.bytes.set(f.local.address.subarray(0, 16), at + 16);
    this.bytes.set(f.remote.address.subarray(0, 16), at + 32);
    v.setUint16(at + 48, f.local.port, true);
    v.setUint16(at + 50, f.remote.port, true);
    v.setUint16(at + 52, rule, true);
    v.setInt32(at + 56, f.pid ?? 0, true);
    v.setUint32(at + 60, f.uid ?? 0, true);
    if (token) this.bytes.set(token, at + 64);
    const extra: { ownerError?: string; token?: string } = {};
    if (f.ownerError !== undefined) extra.ownerError = f.ownerError;
    if (f.token !== undefined && !token) extra.token = f.token.toString('base64');
    if (extra.ownerError !== undefined || extra.token !== undefined) this.extras.push([this.count, extra]);
    this.count++;
    return true;
  }

  /** The batch so far (its buffer is handed over: post it with transfer), and a fresh one begins. */
  take(): UnwatchedBatch {
    const batch: UnwatchedBatch = { idPrefix: this.idPrefix, count: this.count, bytes: this.bytes.subarray(0, this.count * RECORD), ruleIds: this.ruleIds, extras: this.extras };
    this.bytes = new Uint8Array(this.capacity * RECORD);
    this.view = new DataView(this.bytes.buffer);
    this.count = 0;
    this.ruleIds = [];
    this.extras = [];
    return batch;
  }
}

/** The flows of a batch, as the queue thread would have built them, each with its verdict (allowed by
 *  its rule). A batch whose buffer is shorter than its count says yields what it holds. With `keep`,
 *  only the flows whose protocol and ends it accepts are built (most have ended by a prune). */
export function decodeUnwatched(batch: UnwatchedBatch, keep?: (protocol: PacketProtocol, local: Endpoint, remote: Endpoint) => boolean): Array<{ flow: FlowRecord; verdict: Verdict }> {
  const out: Array<{ flow: FlowRecord; verdict: Verdict }> = [];
  const b = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength);
  const extras = new Map(batch.extras);
  const count = Math.min(batch.count, Math.floor(b.length / RECORD));
  for (let i = 0; i < count; i++) {
    const at = i * RECORD;
    const protocol = PROTOCOLS[b[at + 4]!] ?? 'other';
    const family = b[at + 5] === 6 ? 'ipv6' : 'ipv4';
    const size = family === 'ipv6' ? 16 : 4;
    const flags = b[at + 7]!;
    const local = { address: formatAddress(b.subarray(at + 16, at + 16 + size))!, port: b.readUInt16LE(at + 48) };
    const remote = { address: formatAddress(b.subarray(at + 32, at + 32 + size))!, port: b.readUInt16LE(at + 50) };
    if (keep && !keep(protocol, local, remote)) continue;
    const flow: FlowRecord = {
      id: batch.idPrefix + b.readUInt32LE(at),
      time: b.readDoubleLE(at + 8),
      direction: b[at + 6] === 1 ? 'inbound' : 'outbound',
      protocol,
      family,
      local,
      remote,
    };
    const extra = extras.get(i);
    if (flags & HAS_TOKEN) flow.token = b.toString('base64', at + 64, at + 64 + TOKEN_BYTES);
    else if (extra?.token !== undefined) flow.token = extra.token;
    if (flags & HAS_PID) flow.pid = b.readInt32LE(at + 56);
    if (flags & HAS_UID) flow.uid = b.readUInt32LE(at + 60);
    if (extra?.ownerError !== undefined) flow.ownerError = extra.ownerError;
    const ruleId = batch.ruleIds[b.readUInt16LE(at + 52)];
    out.push({ flow, verdict: ruleId !== undefined ? { action: 'allow', by: 'rule', ruleId } : { action: 'allow', by: 'rule' } });
  }
  return out;
}
