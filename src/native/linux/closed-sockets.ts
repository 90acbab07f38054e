// TCP sockets' final counters as they closed: the close-counters map (bpf-program.ts) keyed by the
// socket's ends. What closed is taken from the map in batches (BPF_MAP_LOOKUP_AND_DELETE_BATCH, one
// syscall per 4,096 sockets) and kept here for 1–2 s, in columns — nothing is allocated per
// socket, which matters at tens of thousands of connections a second. A socket is found again by its
// two ports (one number) and then its addresses (four words each).
import { constants } from 'node:os';
import { libc } from './libc.js';
import { ATTR_BYTES, CMD, bpf } from './bpf-syscall.js';
import { CLOSED_KEY_BYTES, CLOSED_VALUE_BYTES } from './bpf-program.js';
import { parseAddressWords } from '../../net/address.js';
import { portPairKey } from '../../net/port-pair.js';

// TCP states a socket leaves for CLOSE (uapi numbering): from LAST_ACK and CLOSING both FINs were
// exchanged; from FIN_WAIT2 (into TIME_WAIT) ours was acked and the peer's arrived; from CLOSE_WAIT
// (an abort) only the peer's arrived; from ESTABLISHED or FIN_WAIT1 (a reset) neither is counted.
const FIN_WAIT2 = 5, CLOSE_WAIT = 8, LAST_ACK = 9, CLOSING = 11;
const FIN_RECEIVED_BEFORE_CLOSE = new Set([FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING]);
const FIN_ACKED_BEFORE_CLOSE = new Set([FIN_WAIT2, LAST_ACK, CLOSING]);
/** Entries read per batch call (the buffers are 64 bytes an entry). */
const BATCH = 4096;
/** Words of a socket's two addresses. */
const WORDS = 8;
/** How long what one collection reads stays in its generation before it moves to the older one (and
 *  is dropped when that moves on): a socket read is kept 1–2 s, for a flow that reaches the main
 *  thread late (a busy event loop) or a poll that lists the sockets just before it closed. */
const GENERATION_MS = 1000;

/** Where `counters` looks: 'collected', only in what `collect` read (no syscall: has it closed
 *  already?); 'after-collect', there, and in the map only when that read could not cover it (the
 *  caller collected after the socket was seen gone); 'anywhere', there and then in the map. */
export type ClosedLook = 'collected' | 'after-collect' | 'anywhere';

/** An address as the close-counters map keys it (four network-order words, IPv4 as
 *  ::ffff:a.b.c.d), written into `out` without allocating; undefined when the text is not one. */
export function closedKeyWords(text: string, out: Uint32Array): Uint32Array | undefined {
  const family = parseAddressWords(text, out);
  if (family === 0) return undefined;
  if (family === 4) {
    out[3] = out[0]!;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0xffff;
  }
  return out;
}

/** A closed socket's data counters and when it closed (whole ms since the epoch, as Date.now()). */
export interface ClosedCounters {
  rx: number;
  tx: number;
  closedAt: number;
}

/** Data counters from a closed socket's sequence counters: the SYN and FINs take a number each. */
function dataCounters(received: number, acked: number, left: number, connected: boolean, closedAt: number): ClosedCounters {
  return {
    rx: Math.max(0, received - (FIN_RECEIVED_BEFORE_CLOSE.has(left) ? 1 : 0)),
    tx: Math.max(0, acked - (connected ? 1 : 0) - (FIN_ACKED_BEFORE_CLOSE.has(left) ? 1 : 0)),
    closedAt,
  };
}

const CLOCK_BOOTTIME = 7;
const timespec = Buffer.alloc(16);

/** What to add to a CLOCK_BOOTTIME time in ms (as the program stamps a close) to make it a time
 *  since the epoch, now. */
function bootToEpochMs(): number {
  if (libc().clockGettime(CLOCK_BOOTTIME, timespec) !== 0) return Number.NaN;
  return Date.now() - (Number(timespec.readBigInt64LE(0)) * 1000 + Number(timespec.readBigInt64LE(8)) / 1e6);
}

/** A little-endian u64 at `at` as a number, without a BigInt. */
function u64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
}

/** The close time of the map value at `v`, in whole ms since the epoch (`bootToEpoch`: bootToEpochMs). */
function closedAtOf(values: DataView, v: number, bootToEpoch: number): number {
  return Math.round(u64(values, v + 24) / 1e6 + bootToEpoch);
}

/** One collection's sockets, in columns; a row is taken at most once. Rows are found by their port
 *  pair through a hash table of its own (typed arrays, chained by row): a Map would allocate as it
 *  grows, and these tables fill with tens of thousands of sockets a second. */
class Generation {
  count = 0;
  /** When its first socket was read (ms). */
  startedAt = 0;
  words = new Uint32Array(BATCH * WORDS);
  received = new Float64Array(BATCH);
  acked = new Float64Array(BATCH);
  left = new Uint8Array(BATCH);
  /** When it closed, ms since the epoch. */
  closedAt = new Float64Array(BATCH);
  taken = new Uint8Array(BATCH);
  ports = new Int32Array(BATCH);
  /** The next row in the same bucket, or -1. */
  next = new Int32Array(BATCH);
  /** Each bucket's first row, or -1 (twice as many buckets as rows). */
  heads = new Int32Array(BATCH * 2).fill(-1);

  clear(): void {
    if (this.count > 0) this.heads.fill(-1);
    this.count = 0;
  }

  private bucket(ports: number): number {
    return (Math.imul(ports, 0x9e3779b1) >>> 0) & (this.heads.length - 1);
  }

  /** Appends a row from the batch buffers' entry `i` (`bootToEpoch`: bootToEpochMs of this read);
   *  returns its port pair. */
  add(keys: DataView, values: DataView, i: number, bootToEpoch: number): number {
    if (this.count === this.received.length) this.grow();
    const row = this.count++;
    const k = i * CLOSED_KEY_BYTES;
    const v = i * CLOSED_VALUE_BYTES;
    const words = this.words;
    for (let w = 0; w < WORDS; w++) words[row * WORDS + w] = keys.getUint32(k + 4 * w, false);
    this.received[row] = u64(values, v);
    this.acked[row] = u64(values, v + 8);
    this.left[row] = values.getUint32(v + 16, true);
    this.closedAt[row] = closedAtOf(values, v, bootToEpoch);
    this.taken[row] = 0;
    // the context's remote_port word: network order in its upper half; local_port: host order
    const ports = portPairKey(keys.getUint32(k + 36, true), keys.getUint16(k + 34, false));
    this.link(row, ports);
    return ports;
  }

  private link(row: number, ports: number): void {
    const b = this.bucket(ports);
    this.ports[row] = ports;
    this.next[row] = this.heads[b]!;
    this.heads[b] = row;
  }

  has(ports: number): boolean {
    for (let row = this.heads[this.bucket(ports)]!; row >= 0; row = this.next[row]!) if (this.ports[row] === ports) return true;
    return false;
  }

  /** Takes the row of these ends, if it holds one not taken yet. */
  take(ports: number, local: ArrayLike<number>, remote: ArrayLike<number>): number | undefined {
    const w = this.words;
    rows: for (let row = this.heads[this.bucket(ports)]!; row >= 0; row = this.next[row]!) {
      if (this.ports[row] !== ports || this.taken[row]) continue;
      const at = row * WORDS;
      for (let i = 0; i < 4; i++) if (w[at + i] !== local[i] || w[at + 4 + i] !== remote[i]) continue rows;
      this.taken[row] = 1;
      return row;
    }
    return undefined;
  }

  private grow(): void {
    const size = this.received.length * 2;
    const words = new Uint32Array(size * WORDS);
    words.set(this.words);
    this.words = words;
    for (const name of ['received', 'acked', 'closedAt'] as const) {
      const next = new Float64Array(size);
      next.set(this[name]);
      this[name] = next;
    }
    for (const name of ['left', 'taken'] as const) {
      const next = new Uint8Array(size);
      next.set(this[name]);
      this[name] = next;
    }
    const ports = new Int32Array(size);
    ports.set(this.ports);
    this.ports = ports;
    this.next = new Int32Array(size);
    this.heads = new Int32Array(size * 2).fill(-1);
    for (let row = 0; row < this.count; row++) this.link(row, ports[row]!);
  }
}

/** The close-counters map of one recorder (its fd), read as described above. */
export class ClosedSockets {
  private readonly attr = Buffer.alloc(ATTR_BYTES);
  private readonly key = Buffer.alloc(CLOSED_KEY_BYTES);
  private readonly value = Buffer.alloc(CLOSED_VALUE_BYTES);
  private readonly valueView = new DataView(this.value.buffer, this.value.byteOffset, this.value.byteLength);
  private batch: BatchBuffers | undefined;
  /** What the collections of the last GENERATION_MS read, and of the span before; undefined until
   *  one has read. */
  private current: Generation | undefined;
  private previous = new Generation();
  /** The kernel refused batch reads: every socket is asked of the map. */
  private batchRefused = false;
  /** The last collection read the whole map (else a miss there is asked of the map). */
  private complete = false;

  constructor(private readonly map: number, private readonly now: () => number = Date.now) {
    const c = libc();
    this.attr.writeBigUInt64LE(c.addressOf(this.key), 8);
    this.attr.writeBigUInt64LE(c.addressOf(this.value), 16);
  }

  /** A closed socket's final data counters by its ends (addresses as four network-order words), when
   *  the program saw it close; undefined otherwise. `connected`: this side connected (its SYN is in
   *  bytes acked). Taken: a second call for the same socket finds nothing in what was collected. */
  counters(local: ArrayLike<number>, localPort: number, remote: ArrayLike<number>, remotePort: number, connected: boolean, look: ClosedLook = 'anywhere'): ClosedCounters | undefined {
    if (this.current) {
      const ports = portPairKey(localPort, remotePort);
      let g = this.current;
      let row = g.take(ports, local, remote);
      if (row === undefined) {
        g = this.previous;
        row = g.take(ports, local, remote);
      }
      if (row !== undefined) return dataCounters(g.received[row]!, g.acked[row]!, g.left[row]!, connected, g.closedAt[row]!);
      if (look === 'after-collect' && this.complete) return undefined;
    }
    if (look === 'collected') return undefined;
    const key = this.key;
    for (let k = 0; k < 4; k++) {
      key.writeUInt32BE(local[k]!, 4 * k);
      key.writeUInt32BE(remote[k]!, 16 + 4 * k);
    }
    key.writeUInt32LE(0, 32);
    key.writeUInt16BE(remotePort, 34);
    key.writeUInt32LE(localPort, 36);
    this.attr.writeUInt32LE(this.map, 0);
    if (bpf(CMD.MAP_LOOKUP_ELEM, this.attr) < 0) return undefined;
    const v = this.valueView;
    return dataCounters(u64(v, 0), u64(v, 8), v.getUint32(16, true), connected, closedAtOf(v, 0, bootToEpochMs()));
  }

  /** Whether what was collected holds a socket with these ports: a cheap first test before the
   *  addresses are parsed for `counters(…, 'collected')`. */
  hasPorts(localPort: number, remotePort: number): boolean {
    if (!this.current) return false;
    const ports = portPairKey(localPort, remotePort);
    return this.current.has(ports) || this.previous.has(ports);
  }

  /** Takes every socket in the map that closed since the last call; returns their port pairs
   *  (`portPairKey`). Kept 1–2 s (GENERATION_MS), then dropped: sockets nobody asked about.
   *  Undefined when the kernel cannot (older than 5.6): `counters` then asks the map for each
   *  socket. `list` false: none are listed (the caller only wants them kept). */
  collect(list = true): number[] | undefined {
    if (this.batchRefused) return undefined;
    const batch = this.batch ??= new BatchBuffers();
    const now = this.now();
    let into = this.current;
    if (!into || now - into.startedAt >= GENERATION_MS) {
      into = this.previous; // its sockets are over GENERATION_MS old: dropped
      into.clear();
      into.startedAt = now;
    }
    const fresh: number[] = [];
    const attr = batch.attr;
    const bootToEpoch = bootToEpochMs();
    let complete = true;
    attr.writeUInt32LE(this.map, 36);
    for (let first = true; ; first = false) {
      attr.writeBigUInt64LE(first ? 0n : batch.inAddress, 0);
      attr.writeUInt32LE(BATCH, 32);
      const r = bpf(CMD.MAP_LOOKUP_AND_DELETE_BATCH, attr);
      const done = r < 0 && -r === constants.errno.ENOENT; // the last entries (count may be > 0)
      if (r < 0 && !done) {
        if (first && this.current === undefined) {
          this.batchRefused = true; // the kernel has no batch operations for this map
          return undefined;
        }
        complete = false; // keep what was read; the rest stays in the map, asked for one by one
        break;
      }
      const count = attr.readUInt32LE(32);
      for (let i = 0; i < count; i++) {
        const ports = into.add(batch.keyView, batch.valueView, i, bootToEpoch);
        if (list) fresh.push(ports);
      }
      if (done || count === 0) break;
      batch.outBatch.copy(batch.inBatch);
    }
    if (into !== this.current) {
      this.previous = this.current ?? new Generation();
      this.current = into;
    }
    this.complete = complete;
    return fresh;
  }
}

/** Buffers of the batch reads, with the bpf_attr pointing at them. */
class BatchBuffers {
  readonly attr = Buffer.alloc(ATTR_BYTES);
  readonly inBatch = Buffer.alloc(8);
  readonly outBatch = Buffer.alloc(8);
  readonly keys = Buffer.alloc(BATCH * CLOSED_KEY_BYTES);
  readonly values = Buffer.alloc(BATCH * CLOSED_VALUE_BYTES);
  readonly keyView = new DataView(this.keys.buffer, this.keys.byteOffset, this.keys.byteLength);
  readonly valueView = new DataView(this.values.buffer, this.values.byteOffset, this.values.byteLength);
  readonly inAddress: bigint;

  constructor() {
    const c = libc();
    this.inAddress = c.addressOf(this.inBatch);
    // union bpf_attr's batch: in_batch, out_batch, keys, values (u64 each), count, map_fd (u32 each)
    this.attr.writeBigUInt64LE(c.addressOf(this.outBatch), 8);
    this.attr.writeBigUInt64LE(c.addressOf(this.keys), 16);
    this.attr.writeBigUInt64LE(c.addressOf(this.values), 24);
  }
}
