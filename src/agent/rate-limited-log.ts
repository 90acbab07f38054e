// A log line that may repeat for every packet (an error in the queue loop) is said at once the first
// time, then at most once per interval with how many were left unsaid: the log stays readable and the
// agent does not spend its time writing it. The counters keep the exact totals.
export class RateLimitedLog {
  private lastSaid = -Infinity;
  private unsaid = 0;

  constructor(
    private readonly log: (line: string) => void,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  say(line: string): void {
    const now = this.now();
    if (now - this.lastSaid < this.intervalMs) {
      this.unsaid++;
      return;
    }
    const more = this.unsaid > 0 ? ` (and ${this.unsaid} more like it in the last ${Math.round((now - this.lastSaid) / 1000)} s)` : '';
    this.lastSaid = now;
    this.unsaid = 0;
    this.log(line + more);
  }
}

/** An error's message for a log line (its stack's first frame too, for a bug that must be found). */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const frame = error.stack?.split('\n').find((l) => l.trimStart().startsWith('at '))?.trim();
  return frame ? `${error.name}: ${error.message} (${frame})` : `${error.name}: ${error.message}`;
}
