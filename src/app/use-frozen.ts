// Space freezes the screen: from the press until resume, the table shown is a detached copy taken at
// that moment (see state/freeze.ts), with its own clock, so no counter, rate or age moves.
import { useRef } from 'react';
import { freezeTable } from '../state/freeze.js';
import type { TableState } from '../state/types.js';
import type { Clock } from './store.js';

/** The frozen copy while `frozen`, else undefined. */
export function useFrozen(live: TableState, frozen: boolean, clock: Clock): TableState | undefined {
  const copy = useRef<TableState | undefined>(undefined);
  if (!frozen) copy.current = undefined;
  else if (!copy.current) copy.current = freezeTable(live, clock.now());
  return copy.current;
}
