import { describe, expect, it } from 'vitest';
import { initialUi, reduceUi } from '../../src/state/ui.js';
import { initialTable } from '../../src/state/reducer.js';

describe('ui reducer', () => {
  it('cycles views with Tab and back with Shift-Tab', () => {
    let s = reduceUi(initialUi(), { type: 'cycle-view', step: 1 });
    expect(s.view).toBe('processes');
    s = reduceUi(s, { type: 'cycle-view', step: -1 });
    s = reduceUi(s, { type: 'cycle-view', step: -1 });
    expect(s.view).toBe('history');
    s = reduceUi(s, { type: 'cycle-view', step: -1 });
    expect(s.view).toBe('rules');
  });

  it('cycles and reverses the sort of the current view', () => {
    let s = reduceUi(initialUi(), { type: 'sort-next', step: 1 });
    expect(s.flowSort.column).toBe('trust');
    s = reduceUi(s, { type: 'sort-next', step: -1 });
    s = reduceUi(s, { type: 'sort-next', step: -1 });
    expect(s.flowSort.column).toBe('rate');
    s = reduceUi(s, { type: 'sort-reverse' });
    expect(s.flowSort.reverse).toBe(true);
  });

  it('sorts by host only when the flows view shows HOST (flows from more than one machine)', () => {
    const onProcess = { ...initialUi(), flowSort: { column: 'process' as const, reverse: false } };
    expect(reduceUi(onProcess, { type: 'sort-next', step: 1 }).flowSort.column).toBe('pid');
    expect(reduceUi(onProcess, { type: 'sort-next', step: 1, hosts: true }).flowSort.column).toBe('host');
    const onHost = reduceUi(onProcess, { type: 'sort-next', step: 1, hosts: true });
    expect(reduceUi(onHost, { type: 'sort-next', step: 1, hosts: true }).flowSort.column).toBe('pid');
    expect(reduceUi(onHost, { type: 'sort-next', step: -1, hosts: true }).flowSort.column).toBe('process');
  });

  it('edits the filter: type, erase, keep, clear', () => {
    let s = reduceUi(initialUi(), { type: 'filter-start' });
    s = reduceUi(s, { type: 'filter-type', text: 'cur' });
    s = reduceUi(s, { type: 'filter-type', text: 'x' });
    s = reduceUi(s, { type: 'filter-erase' });
    expect(s.filter.query).toBe('cur');
    s = reduceUi(s, { type: 'filter-keep' });
    expect(s).toMatchObject({ editingFilter: false, filter: { query: 'cur' } });
    s = reduceUi(s, { type: 'filter-clear' });
    expect(s.filter.query).toBe('');
  });

  it('keeps each view\'s scroll position, and the frozen copy until resume', () => {
    let s = reduceUi(initialUi(), { type: 'scrolled', top: 12 });
    s = reduceUi(s, { type: 'view', view: 'rules' });
    s = reduceUi(s, { type: 'scrolled', top: 3 });
    expect(s.top).toEqual({ flows: 12, processes: 0, rules: 3, history: 0 });
    const copy = initialTable({}, 1_000);
    s = reduceUi(s, { type: 'freeze', table: copy });
    expect(s.frozen).toBe(copy);
    expect(reduceUi(s, { type: 'resume' }).frozen).toBeUndefined();
  });

  it('starts with the bell as asked, and m turns it off and on', () => {
    expect(initialUi().bell).toBe(true);
    const off = initialUi({ bell: false });
    expect(off.bell).toBe(false);
    expect(reduceUi(off, { type: 'bell', on: true }).bell).toBe(true);
  });
});
