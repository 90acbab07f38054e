// Plays a scenario's events at their recorded offsets, scaled by a speed factor, optionally looping.
// One timer at a time: each tick emits every event that is due and sleeps until the next one.
import type { ScenarioEvent } from './scenario.js';

export interface TimelineOptions {
  events: readonly ScenarioEvent[];
  /** Length of one pass in scenario milliseconds (a loop's period). */
  lengthMs: number;
  speed: number;
  loop: boolean;
  /** `pass` counts loop passes from 0. */
  onEvent(event: ScenarioEvent, pass: number): void;
  /** Called once when a non-looping replay has played its last event. */
  onDone?(): void;
  now?: () => number;
}

/** Events emitted in one tick at most, so a huge speed-up cannot starve the event loop. */
const MAX_EVENTS_PER_TICK = 2000;

export class Timeline {
  private timer: NodeJS.Timeout | undefined;
  private index = 0;
  private pass = 0;
  private startedAt = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: TimelineOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.startedAt = this.now();
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Scenario milliseconds played so far (across loop passes). */
  elapsed(): number {
    return (this.now() - this.startedAt) * this.options.speed;
  }

  private tick(): void {
    this.timer = undefined;
    const { events, lengthMs, speed, loop } = this.options;
    const elapsed = this.elapsed();
    let emitted = 0;
    while (!this.stopped) {
      if (this.index >= events.length) {
        if (!loop || events.length === 0) {
          this.options.onDone?.();
          return;
        }
        this.pass++;
        this.index = 0;
      }
      const event = events[this.index] as ScenarioEvent;
      const due = this.pass * lengthMs + event.at;
      if (due > elapsed) {
        const wait = Math.max(0, this.startedAt + due / speed - this.now());
        this.timer = setTimeout(() => this.tick(), wait);
        this.timer.unref();
        return;
      }
      if (emitted >= MAX_EVENTS_PER_TICK) {
        this.timer = setTimeout(() => this.tick(), 0);
        this.timer.unref();
        return;
      }
      this.index++;
      emitted++;
      this.options.onEvent(event, this.pass);
    }
  }
}
