// Rules kept "until it exits" whose process instance has ended, and timed rules whose time has passed,
// leave the list (and the file): they can never match again, and clients are told (`rule-changed`
// `removed`, sent by the rule conversation when it sees the list change).
import type { RuleBook } from './rule-book.js';

export class EndedRules {
  private running = false;

  constructor(
    private readonly rules: RuleBook,
    private readonly tokenGone: (token: string) => boolean,
    /** After rules were removed (the queue threads must learn it). */
    private readonly changed: () => void,
    private readonly log: (line: string) => void,
  ) {}

  /** One pass (skipped while the last one still runs). */
  async drop(now: number): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const ended = this.rules.list().filter((r) => (r.duration.kind === 'process' && this.tokenGone(r.duration.token)) || (r.duration.kind === 'until' && r.duration.until <= now));
      for (const rule of ended) await this.rules.remove(rule.id);
      if (ended.length > 0) this.changed();
    } catch (error) {
      this.log(`could not drop ended rules: ${(error as Error).message}`);
    } finally {
      this.running = false;
    }
  }
}
