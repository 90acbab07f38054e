// Each program's traffic over the last minutes, for the processes view's sparkline: from the byte
// counters the table already holds (agent, passive monitor and demo alike), so it needs no history
// file. Sampled every few seconds rather than per event: a sample walks only the rows that changed
// since the previous one (row.rev), adding each flow's new bytes to its program's current step.
import { processKey } from './derive.js';
import type { TableState } from './types.js';

export interface ProcessTrafficOptions {
  /** Time one step (one mark of the sparkline) covers (default 15 s). */
  stepMs?: number;
  /** Steps kept (default 12: the last 3 minutes). */
  steps?: number;
  /** Least time between two samples (default 2 s). */
  sampleMs?: number;
}

export class ProcessTraffic {
  readonly stepMs: number;
  readonly steps: number;
  private readonly sampleMs: number;
  /** rx + tx of each flow at the last sample. */
  private readonly seen = new Map<string, number>();
  /** Bytes per step by program key; index = step number modulo `steps`. */
  private readonly rings = new Map<string, { steps: number[]; last: number }>();
  private lastRev = -1;
  private lastSample = Number.NEGATIVE_INFINITY;
  private started = false;

  constructor(options: ProcessTrafficOptions = {}) {
    this.stepMs = options.stepMs ?? 15_000;
    this.steps = options.steps ?? 12;
    this.sampleMs = options.sampleMs ?? 2_000;
  }

  /** Takes a sample when the last is `sampleMs` old; true if it did. */
  sample(state: TableState): boolean {
    if (state.now - this.lastSample < this.sampleMs) return false;
    this.lastSample = state.now;
    const step = Math.floor(state.now / this.stepMs);
    for (const row of state.flows.values()) {
      if (row.rev <= this.lastRev && this.started) continue;
      const total = row.rx + row.tx;
      const before = this.seen.get(row.key);
      this.seen.set(row.key, total);
      // The first sample only sets the baseline: bytes moved before flowtop looked are not "now".
      if (!this.started) continue;
      const added = before === undefined ? total : Math.max(total - before, 0);
      if (added > 0) this.add(processKey(row.attribution, row.flow.token), step, added);
    }
    for (const [key, ring] of this.rings) if (ring.last <= step - this.steps) this.rings.delete(key);
    if (this.seen.size > state.flows.size) for (const key of this.seen.keys()) if (!state.flows.has(key)) this.seen.delete(key);
    this.lastRev = state.rev;
    this.started = true;
    return true;
  }

  /** Bytes per step of one program, oldest first, the current step last (all zero when quiet). */
  recent(key: string, now: number): number[] {
    const out = new Array<number>(this.steps).fill(0);
    const ring = this.rings.get(key);
    if (!ring) return out;
    const step = Math.floor(now / this.stepMs);
    for (let i = 0; i < this.steps; i++) {
      const s = step - (this.steps - 1) + i;
      if (s > ring.last || s <= ring.last - this.steps) continue;
      out[i] = ring.steps[mod(s, this.steps)]!;
    }
    return out;
  }

  private add(key: string, step: number, bytes: number): void {
    let ring = this.rings.get(key);
    if (!ring) {
      ring = { steps: new Array<number>(this.steps).fill(0), last: step };
      this.rings.set(key, ring);
    }
    // Steps passed since this program last moved bytes are emptied before this one is counted.
    for (let s = Math.max(ring.last + 1, step - this.steps + 1); s <= step; s++) ring.steps[mod(s, this.steps)] = 0;
    if (step > ring.last) ring.last = step;
    if (step > ring.last - this.steps) ring.steps[mod(step, this.steps)]! += bytes;
  }
}

function mod(n: number, m: number): number {
  return ((n % m) + m) % m;
}
