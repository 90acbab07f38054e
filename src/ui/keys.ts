// Key presses → intents. Pure: the key decoder (key-decoder.ts) hands one key at a time here and the
// app carries the intent out. Backspace arrives as `key.delete` (as in Ink 6.8), so both erase in the
// filter.
import type { KeyFlags } from './key-decoder.js';
import { ERASE_LINE, ERASE_WORD } from '../state/line-edit.js';
import type { RememberScope } from '../protocol/messages.js';
import { PROMPT_DURATIONS, type PromptDuration } from '../app/prompt.js';
import type { ViewName } from '../state/ui.js';

const SCOPE_KEYS: Record<string, RememberScope> = { p: 'process', h: 'host', d: 'domain', o: 'port', e: 'endpoint' };

export type Intent =
  | { kind: 'move'; to: 'up' | 'down' | 'page-up' | 'page-down' | 'home' | 'end' }
  | { kind: 'view'; view: ViewName }
  | { kind: 'cycle-view'; step: 1 | -1 }
  | { kind: 'sort-next'; step: 1 | -1 }
  | { kind: 'sort-reverse' }
  | { kind: 'filter-start' }
  | { kind: 'filter-type'; text: string }
  | { kind: 'filter-erase' }
  | { kind: 'filter-keep' }
  | { kind: 'filter-clear' }
  | { kind: 'toggle-insecure' }
  | { kind: 'details' }
  | { kind: 'detail-scroll'; step: 1 | -1 }
  | { kind: 'escape' }
  | { kind: 'verdict'; action: 'allow' | 'block'; always: boolean }
  | { kind: 'delete-rule' }
  | { kind: 'next-pending' }
  | { kind: 'freeze' }
  | { kind: 'help' }
  | { kind: 'quit' }
  | { kind: 'confirm-yes' }
  | { kind: 'confirm-scope'; scope: RememberScope }
  | { kind: 'confirm-duration'; duration: PromptDuration }
  /** ←/→ move along the durations, ↑/↓ along the scopes. */
  | { kind: 'confirm-cycle'; axis: 'duration' | 'scope'; step: 1 | -1 }
  | { kind: 'toggle-bell' }
  /** History view: the next time window (1 h, 24 h, 7 d, 30 d); programs or hosts. */
  | { kind: 'history-window' }
  | { kind: 'history-by' }
  | { kind: 'none' };

export type KeyMode = 'normal' | 'filter' | 'confirm' | 'help';

export function intentFor(input: string, key: KeyFlags, mode: KeyMode): Intent {
  if (key.ctrl && input === 'c') return { kind: 'quit' };
  if (mode === 'filter') {
    if (key.return) return { kind: 'filter-keep' };
    if (key.escape) return { kind: 'filter-clear' };
    if (key.backspace || key.delete) return { kind: 'filter-erase' };
    if (key.ctrl && input === 'u') return { kind: 'filter-type', text: ERASE_LINE };
    if (key.ctrl && input === 'w') return { kind: 'filter-type', text: ERASE_WORD };
    if (key.upArrow) return { kind: 'move', to: 'up' };
    if (key.downArrow) return { kind: 'move', to: 'down' };
    if (input && !key.ctrl && !key.meta && !key.tab) return { kind: 'filter-type', text: input };
    return { kind: 'none' };
  }
  if (mode === 'confirm') {
    if (key.return || input === 'y') return { kind: 'confirm-yes' };
    if (key.escape || input === 'n' || input === 'q') return { kind: 'escape' };
    if (key.leftArrow || key.rightArrow) return { kind: 'confirm-cycle', axis: 'duration', step: key.leftArrow ? -1 : 1 };
    if (key.upArrow || key.downArrow) return { kind: 'confirm-cycle', axis: 'scope', step: key.upArrow ? -1 : 1 };
    const scope = SCOPE_KEYS[input];
    if (scope) return { kind: 'confirm-scope', scope };
    const at = '12345'.indexOf(input);
    if (input.length === 1 && at >= 0) return { kind: 'confirm-duration', duration: PROMPT_DURATIONS[at]! };
    return { kind: 'none' };
  }
  if (mode === 'help') {
    if (input === 'q') return { kind: 'quit' };
    return { kind: 'help' };
  }
  if (key.upArrow || input === 'k') return { kind: 'move', to: 'up' };
  if (key.downArrow || input === 'j') return { kind: 'move', to: 'down' };
  if (key.pageUp || (key.ctrl && input === 'b')) return { kind: 'move', to: 'page-up' };
  if (key.pageDown || (key.ctrl && input === 'f')) return { kind: 'move', to: 'page-down' };
  if (key.home || input === 'g') return { kind: 'move', to: 'home' };
  if (key.end || input === 'G') return { kind: 'move', to: 'end' };
  if (key.tab) return { kind: 'cycle-view', step: key.shift ? -1 : 1 };
  if (key.return) return { kind: 'details' };
  if (key.escape) return { kind: 'escape' };
  if (key.delete) return { kind: 'delete-rule' };
  switch (input) {
    case '1': return { kind: 'view', view: 'flows' };
    case '2': return { kind: 'view', view: 'processes' };
    case '3': return { kind: 'view', view: 'rules' };
    case '4': return { kind: 'view', view: 'history' };
    case 'w': return { kind: 'history-window' };
    case 'h': return { kind: 'history-by' };
    case '/': return { kind: 'filter-start' };
    case '!': return { kind: 'toggle-insecure' };
    case 's': return { kind: 'sort-next', step: 1 };
    case 'S':
    case 'r': return { kind: 'sort-reverse' };
    case '>': return { kind: 'sort-next', step: 1 };
    case '<': return { kind: 'sort-next', step: -1 };
    case 'a': return { kind: 'verdict', action: 'allow', always: false };
    case 'b': return { kind: 'verdict', action: 'block', always: false };
    case 'A': return { kind: 'verdict', action: 'allow', always: true };
    case 'B': return { kind: 'verdict', action: 'block', always: true };
    case 'J': return { kind: 'detail-scroll', step: 1 };
    case 'K': return { kind: 'detail-scroll', step: -1 };
    case 'd': return { kind: 'delete-rule' };
    case 'n': return { kind: 'next-pending' };
    case 'm': return { kind: 'toggle-bell' };
    case ' ': return { kind: 'freeze' };
    case '?': return { kind: 'help' };
    case 'q': return { kind: 'quit' };
  }
  return { kind: 'none' };
}

/** The help overlay's text: every key, grouped. */
export const HELP: ReadonlyArray<readonly [string, string]> = [
  ['↑ ↓  j k', 'move'],
  ['PgUp PgDn  Ctrl-b Ctrl-f', 'page up / down'],
  ['Home End  g G', 'first / last row'],
  ['Tab Shift-Tab  1 2 3 4', 'flows / processes / rules / history'],
  ['w  h', 'history view: time window (1h 24h 7d 30d) / programs or hosts'],
  ['/', 'filter: text, port:443 state:pending user:root proto:udp host:NAME (Enter keeps, Esc clears)'],
  ['Ctrl-U  Ctrl-W', 'while filtering: erase the line / the last word'],
  ['!', 'only flows that are not secure'],
  ['s  < >', 'sort column: next / move left, right (HOST too)'],
  ['S  r', 'reverse the sort'],
  ['Enter', 'details of the selected row (Esc closes); history: a program\'s hosts'],
  ['J  K', 'scroll the details pane down / up'],
  ['a  b', 'allow / block the selected flow once (processes view: its pending flows)'],
  ['A  B', 'allow / block with a rule: the prompt asks how long (1-5) and for what (p h d o e)'],
  ['d  Del', 'delete the selected rule (rules view, asks first)'],
  ['n', 'jump to the next pending flow (pending flows stay pinned on top)'],
  ['m', 'bell on new pending flows and history events: mute / unmute'],
  ['Space', 'freeze / resume the display'],
  ['?', 'this help'],
  ['q  Ctrl-C', 'quit'],
];
