// The line under an empty table, saying why it is empty: nothing arrived yet, the filter hides
// everything, or (rules) the list has not arrived, is empty, or the extension keeps no rules at all.
import type { SourceInfo } from '../state/types.js';
import type { UiState } from '../state/ui.js';
import { clean } from './format.js';

export interface EmptyNoteInput {
  ui: UiState;
  sources: readonly SourceInfo[];
  shown: { flows: number; processes: number; rules: number };
  /** Pinned pending flows among the shown flows (they show whatever the filter). */
  pinned: number;
}

export function emptyNote({ ui, sources, shown, pinned }: EmptyNoteInput): string | undefined {
  // The history view says itself why it is empty.
  if (ui.help || ui.view === 'history') return undefined;
  const filtered = ui.filter.query !== '' || ui.filter.onlyInsecure;
  if (ui.view === 'rules') return shown.rules === 0 ? emptyRulesNote(sources) : undefined;
  if (shown[ui.view] === 0) return filtered ? 'nothing matches the filter (Esc clears it)' : 'no flows yet';
  if (ui.view === 'flows' && pinned > 0 && shown.flows === pinned && filtered) return 'nothing else matches the filter; flows waiting for a verdict always show (Esc clears it)';
  return undefined;
}

/** "No rules" only once a connected extension that keeps rules has sent its (empty) list. */
export function emptyRulesNote(sources: readonly SourceInfo[]): string {
  const connected = sources.filter((s) => s.hello && s.status.state === 'connected');
  const keeping = connected.filter((s) => s.hello!.capabilities.includes('rules'));
  if (keeping.length > 0) return keeping.every((s) => s.rules.known) ? 'no rules from the extension' : 'waiting for the rule list…';
  if (connected.length > 0) {
    const names = [...new Set(connected.map((s) => clean(s.hello!.extension.name)))].join(', ');
    return `${names} keeps no rules (it has no "rules" capability)`;
  }
  return 'waiting for the rule list…';
}
