// One line of text of a known width, drawn without Ink measuring it.
//
// Ink measures every <Text> whose content changed with its `measureText`, which keeps each distinct
// text it ever measured in a module-level Map that is never emptied: a table whose rows change every
// frame (ages, rates, new flows) adds about 50 entries a frame, ~14 MB per 1,000 frames at 200x50,
// for as long as the app runs. A text node whose width and height are set is not measured (the
// layout engine skips the measure call when both are fixed), so nothing is kept. The children are
// <Text> elements as usual: inside this node Ink treats them as nested text, applying their colours.
import { createElement, type FunctionComponent, type ReactNode } from 'react';

interface InkTextProps {
  style: {
    flexGrow: number;
    flexShrink: number;
    flexDirection: 'row';
    textWrap: 'truncate-end';
    width: number;
    height: number;
  };
  children?: ReactNode;
}

/** Ink's own host element for text (what <Text> renders). */
const INK_TEXT = 'ink-text' as unknown as FunctionComponent<InkTextProps>;

export function Line({ width, children }: { width: number; children?: ReactNode }) {
  return createElement(INK_TEXT, { style: { flexGrow: 0, flexShrink: 0, flexDirection: 'row', textWrap: 'truncate-end', width: Math.max(width, 0), height: 1 } }, children);
}
