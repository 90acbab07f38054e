// Flows a rule decided in a queue thread, as that thread hands them to the main thread: a fixed-size
// binary record per flow in one transferable buffer, not a flow object each. Building the objects
// (address strings, base64 tokens) and cloning them between threads, one message per connection, cost
// the queue loop several µs per connection and woke the main thread for each; the main thread decodes
// a batch when someone watches (to publish it), or keeps it undecoded until a client subscribes.
import type { BlockMode, Endpoint, FlowIdentity, FlowRecord, Verdict } from '../protocol/messages.js';
import { formatAddress } from '../net/address.js';
import type { PacketProtocol } from './packet.js';

/** Bytes per flow: packet id 4, protocol/family/direction/flags 4, time 8, local and remote address
 *  16 each, ports 2 each, rule index 2, identity index 2, pid 4, uid 4, token 24. */
const RECORD = 88;
const TOKEN_BYTES = 24;
const PROTOCOLS: readonly PacketProtocol[] = ['tcp', 'udp', 'icmp', 'other'];
const HAS_TOKEN = 1;
const HAS_PID = 2;
const HAS_UID = 4;
const BLOCKED = 8;
/** With BLOCKED: the rule's block mode is reject (else drop). */
const REJECT = 16;
const HAS_IDENTITY = 32;
/** Indexes (rule, identity) are 16 bits: a batch holds at most this many flows. */
const MAX_CAPACITY = 0xffff;
const IDENTITY_KINDS: ReadonlySet<string> = new Set<FlowIdentity['kind']>(['sha256', 'package', 'requirement']);

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

/** One batch as posted (its buffer transferred): decodeDecided turns it back into flows. */
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
    const flags = (token ? HAS_TOKEN : 0) | (f.pid !== undefined ? HAS_PID : 0) | (f.uid !== undefined ? HAS_UID : 0)
      | (f.block ? BLOCKED : 0) | (f.block === 'reject' ? REJECT : 0) | (f.identity ? HAS_IDENTITY : 0);
    v.setUint32(at, f.packetId >>> 0, true);
    v.setUint8(at + 4, Math.max(0, PROTOCOLS.indexOf(f.protocol)));
    v.setUint8(at + 5, f.family === 'ipv6' ? 6 : 4);
    v.setUint8(at + 6, f.direction === 'inbound' ? 1 : 0);
    v.setUint8(at + 7, flags);
    v.setFloat64(at + 8, f.time, true);
    this.bytes.fill(0, at + 16, at + 48);
    this.bytes.set(f.local.address.subarray(0, 16), at + 16);
    this.bytes.set(f.remote.address.subarray(0, 16), at + 32);
    v.setUint16(at + 48, f.local.port, true);
    v.setUint16(at + 50, f.remote.port, true);
    v.setUint16(at + 52, rule, true);
    v.setUint16(at + 54, identity, true);
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

export interface DecodeOptions {
  /** Only the flows this rule action decided (e.g. the allowed ones, for the live flows). */
  only?: Verdict['action'];
  /** Only the flows whose protocol and ends it accepts are built (most have ended by a prune). */
  keep?: (protocol: PacketProtocol, local: Endpoint, remote: Endpoint) => boolean;
}

/** The flows of a batch, as the queue thread would have built them, each with its verdict (one object
 *  per flow, ready to publish). The batch
 *  comes from our own thread, but is read defensively all the same: a malformed batch yields nothing,
 *  a buffer shorter than its count says yields the records it holds, and a record with an impossible
 *  field (a time that is not a number, an unknown family) is skipped; an index to a missing rule or
 *  identity leaves that field out. */
export function decodeDecided(batch: DecidedBatch, options: DecodeOptions = {}): Array<FlowRecord & { verdict: Verdict }> {
  const out: Array<FlowRecord & { verdict: Verdict }> = [];
  if (!isDecidedBatch(batch)) return out;
  const b = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength);
  const extras = new Map(batch.extras.filter(isExtra));
  const count = Math.min(batch.count, Math.floor(b.length / RECORD));
  for (let i = 0; i < count; i++) {
    const at = i * RECORD;
    const flags = b[at + 7]!;
    const action: Verdict['action'] = flags & BLOCKED ? 'block' : 'allow';
    if (options.only !== undefined && action !== options.only) continue;
    const protocol = PROTOCOLS[b[at + 4]!] ?? 'other';
    const familyByte = b[at + 5];
    if (familyByte !== 4 && familyByte !== 6) continue;
    const family = familyByte === 6 ? 'ipv6' : 'ipv4';
    const size = family === 'ipv6' ? 16 : 4;
    const time = b.readDoubleLE(at + 8);
    if (!Number.isFinite(time)) continue;
    const local = { address: formatAddress(b.subarray(at + 16, at + 16 + size))!, port: b.readUInt16LE(at + 48) };
    const remote = { address: formatAddress(b.subarray(at + 32, at + 32 + size))!, port: b.readUInt16LE(at + 50) };
    if (options.keep && !options.keep(protocol, local, remote)) continue;
    const verdict: Verdict = { action, by: 'rule' };
    const ruleId = batch.ruleIds[b.readUInt16LE(at + 52)];
    if (typeof ruleId === 'string') verdict.ruleId = ruleId;
    if (action === 'block') verdict.blockMode = flags & REJECT ? 'reject' : 'drop';
    const flow: FlowRecord & { verdict: Verdict } = {
      id: batch.idPrefix + b.readUInt32LE(at),
      time,
      direction: b[at + 6] === 1 ? 'inbound' : 'outbound',
      protocol,
      family,
      local,
      remote,
      verdict,
    };
    const extra = extras.get(i);
    if (flags & HAS_TOKEN) flow.token = b.toString('base64', at + 64, at + 64 + TOKEN_BYTES);
    else if (extra?.token !== undefined) flow.token = extra.token;
    if (flags & HAS_PID) flow.pid = b.readInt32LE(at + 56);
    if (flags & HAS_UID) flow.uid = b.readUInt32LE(at + 60);
    if (extra?.ownerError !== undefined) flow.ownerError = extra.ownerError;
    if (flags & HAS_IDENTITY) {
      const identity = batch.identities[b.readUInt16LE(at + 54)];
      // a copy: the flow's identity is its own (a later update must not reach another flow's)
      if (isFlowIdentity(identity)) flow.identity = { ...identity };
    }
    out.push(flow);
  }
  return out;
}

function isDecidedBatch(b: DecidedBatch): boolean {
  const x = b as Partial<Record<keyof DecidedBatch, unknown>> | null;
  return typeof x === 'object' && x !== null && typeof x.idPrefix === 'string' && typeof x.count === 'number' && Number.isInteger(x.count) && x.count >= 0
    && x.bytes instanceof Uint8Array && Array.isArray(x.ruleIds) && Array.isArray(x.identities) && Array.isArray(x.extras);
}

function isExtra(e: unknown): e is [number, { ownerError?: string; token?: string }] {
  if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'number' || typeof e[1] !== 'object' || e[1] === null) return false;
  const x = e[1] as Record<string, unknown>;
  return (x['ownerError'] === undefined || typeof x['ownerError'] === 'string') && (x['token'] === undefined || typeof x['token'] === 'string');
}

function isFlowIdentity(i: unknown): i is FlowIdentity {
  if (typeof i !== 'object' || i === null) return false;
  const x = i as Record<string, unknown>;
  return typeof x['kind'] === 'string' && IDENTITY_KINDS.has(x['kind']) && typeof x['value'] === 'string'
    && (x['package'] === undefined || typeof x['package'] === 'string') && (x['path'] === undefined || typeof x['path'] === 'string');
}
