import { describe, expect, it } from 'vitest';
import { initialUi, reduceUi } from '../../src/state/ui.js';

describe('ui reducer', () => {
  it('cycles views with Tab and back with Shift-Tab', () => {
    let s = reduceUi(initialUi(), { type: 'cycle-view', step: 1 });
    expect(s.view).toBe('processes');
    s = reduceUi(s, { type: 'cycle-view', step: -1 });
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
});
