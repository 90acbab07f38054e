// The adversarial suite's figures: every attack prints one line with how often it was tried, how often
// it got through and how often it crashed something, so releases can be compared line by line
// (`npm test -- test/adversarial` and grep `adversarial:`).
import { appendFileSync } from 'node:fs';

export interface AttackCounts {
  /** Attempts made. */
  tries: number;
  /** Attempts that achieved what the attacker wanted (must be 0). */
  bypasses: number;
  /** Agent or client processes that died or hung because of an attempt (must be 0). */
  crashes: number;
}

/** Prints `adversarial: NAME tries=N bypasses=N crashes=N` to stderr and, when set, to $FLOWTOP_ADVERSARIAL_REPORT. */
export function reportAttack(name: string, counts: AttackCounts): void {
  const line = `adversarial: ${name} tries=${counts.tries} bypasses=${counts.bypasses} crashes=${counts.crashes}\n`;
  process.stderr.write(line);
  const file = process.env['FLOWTOP_ADVERSARIAL_REPORT'];
  if (file) appendFileSync(file, line);
}
