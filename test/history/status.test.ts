// What `flowtop agent --status` says of the history, from the writer's notices.
import { describe, expect, it } from 'vitest';
import { HistoryState } from '../../src/history/status.js';
import { describeHistory } from '../../src/commands/agent-history-status.js';

describe('the history line of --status', () => {
  it('follows the writer: recording, failing with the reason and the count of dropped flows, recording again', () => {
    let now = Date.parse('2026-12-05T10:00:00Z');
    const state = new HistoryState('/nonexistent/history.db', () => now);
    expect(describeHistory(state.read(0), now)).toBe('starting: opening /nonexistent/history.db');
    state.notice({ type: 'ready' });
    state.notice({ type: 'progress', written: 120, lost: 0, lastWrite: now });
    now += 3_000;
    expect(describeHistory(state.read(0), now)).toBe('recording into /nonexistent/history.db: 120 flows written, the last 3 s ago; 0 not written');
    state.notice({ type: 'problem', message: '/nonexistent/history.db: database or disk is full', writing: true });
    state.notice({ type: 'progress', written: 120, lost: 500, lastWrite: now - 3_000 });
    expect(describeHistory(state.read(7), now)).toBe(
      'CANNOT WRITE /nonexistent/history.db since 2026-12-05T10:00:03.000Z: /nonexistent/history.db: database or disk is full; '
        + 'flows are dropped until a write succeeds (tried every 10 s); 120 flows written, the last 3 s ago; 500 not written; '
        + '7 open flows forgotten among too many (their ends are not recorded)',
    );
    state.notice({ type: 'recovered', lostBatches: 1, lostFlows: 500 });
    expect(state.read(0)).toMatchObject({ state: 'recording', lost: 500 });
    expect(state.read(0).reason).toBeUndefined();
  });

  it('a side problem while recording is said without leaving the recording state; a stop is final', () => {
    const now = Date.parse('2026-12-05T10:00:00Z');
    const state = new HistoryState('/nonexistent/h.db', () => now);
    state.notice({ type: 'ready' });
    state.notice({ type: 'problem', message: 'pruning old history failed: busy', writing: false });
    expect(describeHistory(state.read(0), now)).toBe('recording into /nonexistent/h.db: 0 flows written; 0 not written; last problem: pruning old history failed: busy');
    state.notice({ type: 'refused', message: 'the history thread failed: out of memory' });
    state.notice({ type: 'recovered', lostBatches: 0, lostFlows: 0 });
    expect(describeHistory(state.read(0), now)).toBe('NOT recording since 2026-12-05T10:00:00.000Z: the history thread failed: out of memory; 0 flows written; 0 not written');
  });

  it('off says why; control characters in a reason never reach the terminal', () => {
    expect(describeHistory(HistoryState.off('turned off (--no-history)'), 0)).toBe('off: turned off (--no-history)');
    expect(describeHistory(HistoryState.off('/x\x1b[2J: read-only file system', '/x'), 0)).not.toContain('\x1b');
  });
});
