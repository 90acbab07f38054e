// Reading a queue thread's batch of decided flows (decided-batch.ts) on the main thread: field by
// field without building anything (DecidedRecords), or as the flow objects the clients are sent
// (decodeDecided). The batch comes from our own thread, but is read defensively all the same: a
// malformed batch has no records, a buffer shorter than its count says has the records it holds, and
// a record with an impossible field (a time that is not a number, an unknown family) is skipped; an
// index to a missing rule or identity leaves that field out.
import type { Endpoint, FlowIdentity, FlowRecord, Verdict } from '../protocol/messages.js';
import { formatAddress } from '../net/address.js';
import { AT, FLAGS, PROTOCOLS, RECORD, TOKEN_BYTES, type DecidedBatch } from './decided-batch.js';
import type { PacketProtocol } from './packet.js';

const IDENTITY_KINDS: ReadonlySet<string> = new Set<FlowIdentity['kind']>(['sha256', 'package', 'requirement']);
type Extra = { ownerError?: string; token?: string };

/** The text of the last token and remote address read, by their bytes: a program's connections in
 *  a row share both, and each is then one comparison instead of a new string. */
const lastToken = Buffer.alloc(TOKEN_BYTES);
let lastTokenText: string | undefined;
const lastRemote = Buffer.alloc(16);
let lastRemoteFamily = 0;
let lastRemoteText = '';

export class DecidedRecords {
  /** Records readable (0 for a malformed batch). */
  readonly count: number;
  private readonly b: Buffer;
  private readonly extras: Map<number, Extra>;

  constructor(readonly batch: DecidedBatch) {
    const ok = isDecidedBatch(batch);
    this.b = ok ? Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength) : Buffer.alloc(0);
    this.extras = new Map(ok ? batch.extras.filter(isExtra) : []);
    this.count = ok ? Math.min(batch.count, Math.floor(this.b.length / RECORD)) : 0;
  }

  /** Whether record `i` can be read as a flow (a known family, a time). */
  valid(i: number): boolean {
    const family = this.b[i * RECORD + AT.family];
    return (family === 4 || family === 6) && Number.isFinite(this.time(i));
  }

  action(i: number): Verdict['action'] {
    return this.b[i * RECORD + AT.flags]! & FLAGS.blocked ? 'block' : 'allow';
  }

  blockMode(i: number): NonNullable<Verdict['blockMode']> {
    return this.b[i * RECORD + AT.flags]! & FLAGS.reject ? 'reject' : 'drop';
  }

  protocol(i: number): PacketProtocol {
    return PROTOCOLS[this.b[i * RECORD + AT.protocol]!] ?? 'other';
  }

  family(i: number): 'ipv4' | 'ipv6' {
    return this.b[i * RECORD + AT.family] === 6 ? 'ipv6' : 'ipv4';
  }

  inbound(i: number): boolean {
    return this.b[i * RECORD + AT.direction] === 1;
  }

  time(i: number): number {
    return this.b.readDoubleLE(i * RECORD + AT.time);
  }

  id(i: number): string {
    return this.batch.idPrefix + this.b.readUInt32LE(i * RECORD + AT.packetId);
  }

  port(i: number, side: 'local' | 'remote'): number {
    return this.b.readUInt16LE(i * RECORD + (side === 'local' ? AT.localPort : AT.remotePort));
  }

  address(i: number, side: 'local' | 'remote'): string {
    const at = i * RECORD + (side === 'local' ? AT.local : AT.remote);
    return formatAddress(this.b.subarray(at, at + (this.family(i) === 'ipv6' ? 16 : 4)))!;
  }

  /** The remote address's text, the same string as the last call's when the bytes are the same. */
  remoteAddress(i: number): string {
    const at = i * RECORD + AT.remote;
    const family = this.b[i * RECORD + AT.family]!;
    const size = family === 6 ? 16 : 4;
    if (family !== lastRemoteFamily || !sameBytes(this.b, at, lastRemote, size)) {
      lastRemoteText = formatAddress(this.b.subarray(at, at + size))!;
      lastRemoteFamily = family;
      this.b.copy(lastRemote, 0, at, at + size);
    }
    return lastRemoteText;
  }

  /** An end's address as the kernel's close-counters map keys it (four network-order words, IPv4
   *  as ::ffff:a.b.c.d), written into `out`. */
  keyWords(i: number, side: 'local' | 'remote', out: Uint32Array): Uint32Array {
    const at = i * RECORD + (side === 'local' ? AT.local : AT.remote);
    if (this.b[i * RECORD + AT.family] === 6) {
      for (let k = 0; k < 4; k++) out[k] = this.b.readUInt32BE(at + 4 * k);
    } else {
      out[0] = 0;
      out[1] = 0;
      out[2] = 0xffff;
      out[3] = this.b.readUInt32BE(at);
    }
    return out;
  }

  ruleId(i: number): string | undefined {
    const id = this.batch.ruleIds[this.b.readUInt16LE(i * RECORD + AT.rule)];
    return typeof id === 'string' ? id : undefined;
  }

  /** The owner's token (base64), the same string as the last call's when the bytes are the same. */
  token(i: number): string | undefined {
    const at = i * RECORD + AT.token;
    if (this.b[i * RECORD + AT.flags]! & FLAGS.token) {
      if (lastTokenText === undefined || !sameBytes(this.b, at, lastToken, TOKEN_BYTES)) {
        lastTokenText = this.b.toString('base64', at, at + TOKEN_BYTES);
        this.b.copy(lastToken, 0, at, at + TOKEN_BYTES);
      }
      return lastTokenText;
    }
    return this.extras.get(i)?.token;
  }

  pid(i: number): number | undefined {
    return this.b[i * RECORD + AT.flags]! & FLAGS.pid ? this.b.readInt32LE(i * RECORD + AT.pid) : undefined;
  }

  uid(i: number): number | undefined {
    return this.b[i * RECORD + AT.flags]! & FLAGS.uid ? this.b.readUInt32LE(i * RECORD + AT.uid) : undefined;
  }

  ownerError(i: number): string | undefined {
    return this.extras.get(i)?.ownerError;
  }

  /** The code identity the rules matched with: the batch's own object, shared by its flows of that
   *  file (copy it before it is changed). */
  identity(i: number): FlowIdentity | undefined {
    if (!(this.b[i * RECORD + AT.flags]! & FLAGS.identity)) return undefined;
    const identity = this.batch.identities[this.b.readUInt16LE(i * RECORD + AT.identity)];
    return isFlowIdentity(identity) ? identity : undefined;
  }
}

export interface DecodeOptions {
  /** Only the flows this rule action decided (e.g. the allowed ones, for the live flows). */
  only?: Verdict['action'];
  /** Only the flows whose protocol and ends it accepts are built (most have ended by a prune). */
  keep?: (protocol: PacketProtocol, local: Endpoint, remote: Endpoint) => boolean;
  /** Offered each valid record first: true when it took the record as it is (no flow is built). */
  take?: (records: DecidedRecords, i: number) => boolean;
}

/** The flows of a batch, as the queue thread would have built them, each with its verdict (one object
 *  per flow, ready to publish). */
export function decodeDecided(batch: DecidedBatch, options: DecodeOptions = {}): Array<FlowRecord & { verdict: Verdict }> {
  const out: Array<FlowRecord & { verdict: Verdict }> = [];
  const r = new DecidedRecords(batch);
  for (let i = 0; i < r.count; i++) {
    const action = r.action(i);
    if (options.only !== undefined && action !== options.only) continue;
    if (!r.valid(i)) continue;
    if (options.take?.(r, i)) continue;
    const protocol = r.protocol(i);
    const local = { address: r.address(i, 'local'), port: r.port(i, 'local') };
    const remote = { address: r.remoteAddress(i), port: r.port(i, 'remote') };
    if (options.keep && !options.keep(protocol, local, remote)) continue;
    const verdict: Verdict = { action, by: 'rule' };
    const ruleId = r.ruleId(i);
    if (ruleId !== undefined) verdict.ruleId = ruleId;
    if (action === 'block') verdict.blockMode = r.blockMode(i);
    const flow: FlowRecord & { verdict: Verdict } = {
      id: r.id(i), time: r.time(i), direction: r.inbound(i) ? 'inbound' : 'outbound', protocol, family: r.family(i), local, remote, verdict,
    };
    const token = r.token(i);
    if (token !== undefined) flow.token = token;
    const pid = r.pid(i);
    if (pid !== undefined) flow.pid = pid;
    const uid = r.uid(i);
    if (uid !== undefined) flow.uid = uid;
    const ownerError = r.ownerError(i);
    if (ownerError !== undefined) flow.ownerError = ownerError;
    const identity = r.identity(i);
    // a copy: the flow's identity is its own (a later update must not reach another flow's)
    if (identity) flow.identity = { ...identity };
    out.push(flow);
  }
  return out;
}

function sameBytes(a: Buffer, at: number, b: Buffer, size: number): boolean {
  for (let k = 0; k < size; k++) if (a[at + k] !== b[k]) return false;
  return true;
}

function isDecidedBatch(b: DecidedBatch): boolean {
  const x = b as Partial<Record<keyof DecidedBatch, unknown>> | null;
  return typeof x === 'object' && x !== null && typeof x.idPrefix === 'string' && typeof x.count === 'number' && Number.isInteger(x.count) && x.count >= 0
    && x.bytes instanceof Uint8Array && Array.isArray(x.ruleIds) && Array.isArray(x.identities) && Array.isArray(x.extras);
}

function isExtra(e: unknown): e is [number, Extra] {
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
