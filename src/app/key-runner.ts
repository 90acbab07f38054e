// Keys carried out one at a time, each against the UI state the previous key produced (and the
// screen model derived from it), so keys typed ahead act exactly as if typed slowly. One safety
// rule for keys that arrived in the same read: a confirmation (Enter or y at a prompt) is taken
// only for the prompt as it was on screen when the read began. A read like "1y" or "A\r" would
// otherwise confirm a choice the person never saw: such a read leaves the prompt as it was shown
// (or, opened by the read itself, open) and the rest of it is dropped.
import type { Confirm, UiAction, UiState } from '../state/ui.js';
import { reduceUi, samePrompt } from '../state/ui.js';
import type { TableState } from '../state/types.js';
import type { KeyEvent } from '../ui/key-decoder.js';
import { intentFor, type Intent, type KeyMode } from '../ui/keys.js';
import { note, outcomeOf, type Effect } from './intents.js';
import type { ScreenModel } from './screen-model.js';

export function keyMode(ui: UiState): KeyMode {
  return ui.help ? 'help' : ui.editingFilter ? 'filter' : ui.confirm ? 'confirm' : 'normal';
}

/** One read of the terminal: how many of its keys were carried out, and the prompt shown when it
 *  began. */
export interface Read {
  keys: number;
  shown: Confirm | undefined;
  dropped: boolean;
}

export function startRead(ui: UiState): Read {
  return { keys: 0, shown: ui.confirm, dropped: false };
}

export interface KeyEnv {
  model(ui: UiState): ScreenModel;
  live: TableState;
  now: number;
  /** Carries an effect out; returns what to tell the person (status notes). */
  perform(effect: Effect): UiAction[];
}

const sameConfirm = (a: Confirm | undefined, b: Confirm | undefined): boolean => JSON.stringify(a) === JSON.stringify(b);

function intentOf(event: KeyEvent, ui: UiState): Intent {
  const mode = keyMode(ui);
  // A paste is text: it goes into the filter being typed, and is never taken as commands.
  if ('paste' in event) return mode === 'filter' ? { kind: 'filter-type', text: event.paste } : { kind: 'none' };
  return intentFor(event.input, event.key, mode);
}

/** Carries out `events` from `start`; returns the state after them and the actions that lead there
 *  (for the reducer that owns the state), in order. */
export function runKeys(start: UiState, events: readonly KeyEvent[], read: Read, env: KeyEnv): { state: UiState; actions: UiAction[] } {
  let state = start;
  const actions: UiAction[] = [];
  const apply = (a: UiAction): void => {
    state = reduceUi(state, a);
    actions.push(a);
  };
  for (const event of events) {
    if (read.dropped) break;
    const intent = intentOf(event, state);
    if (intent.kind === 'confirm-yes' && read.keys > 0 && !sameConfirm(state.confirm, read.shown)) {
      if (samePrompt(state.confirm, read.shown)) apply({ type: 'confirm', confirm: read.shown });
      // Said, not silent: a prompt that ignores Enter looks stuck.
      apply(note(`${'key' in event && !event.key.return ? event.input : 'Enter'} ignored: it came with a change not yet on screen; check the choice below, then confirm`, 'error', env.now));
      read.dropped = true;
      break;
    }
    read.keys++;
    const outcome = outcomeOf(intent, { ui: state, model: env.model(state), live: env.live, now: env.now });
    for (const a of outcome.actions) apply(a);
    for (const effect of outcome.effects ?? []) for (const a of env.perform(effect)) apply(a);
    // Where the window now starts, so the next key (and the next frame) scroll from there.
    const after = env.model(state);
    if (after.top !== state.top[state.view]) apply({ type: 'scrolled', top: after.top });
  }
  return { state, actions };
}
