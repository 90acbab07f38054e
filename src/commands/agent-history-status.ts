// The history line of `flowtop agent --status`: what the agent's recording is doing, in words.
import type { HistoryStatus } from '../history/status.js';
import { replaceControls } from '../text/controls.js';
import { bytes } from '../ui/format.js';

/** One line for `flowtop agent --status` (after its label). */
export function describeHistory(h: HistoryStatus, now: number): string {
  const ago = (ms: number): string => `${Math.max(Math.round((now - ms) / 1000), 0)} s ago`;
  const at = (ms: number | undefined): string => (ms !== undefined ? ` since ${new Date(ms).toISOString()}` : '');
  const file = `${h.path ?? ''}${h.bytes !== undefined ? ` (${bytes(h.bytes)})` : ''}`;
  const counts = `${h.written} flow${h.written === 1 ? '' : 's'} written${h.lastWrite !== undefined ? `, the last ${ago(h.lastWrite)}` : ''}; ${h.lost} not written${h.forgotten > 0 ? `; ${h.forgotten} open flows forgotten among too many (their ends are not recorded)` : ''}`;
  const reason = replaceControls(h.reason ?? '');
  switch (h.state) {
    case 'off':
      return `off: ${reason}`;
    case 'starting':
      return `starting: opening ${file}`;
    case 'recording':
      return `recording into ${file}: ${counts}${reason ? `; last problem: ${reason}` : ''}`;
    case 'failing':
      return `CANNOT WRITE ${file}${at(h.since)}: ${reason}; flows are dropped until a write succeeds (tried every 10 s); ${counts}`;
    case 'stopped':
      return `NOT recording${at(h.since)}: ${reason}; ${counts}`;
  }
}
