// A table drawn as one <Text> per row (cells padded into a string): Ink's layout cost grows with the
// number of nodes, so a <Box> per cell would not scale.
import { Box, Text } from 'ink';
import type { Trust } from '../attribution/types.js';
import type { SortSpec } from '../state/sort.js';
import { TRUST_COLOR, glyphs } from './badges.js';
import type { CellContext, PlacedColumn } from './columns.js';
import { displayWidth, pad } from './format.js';
import { Line } from './Line.js';

export interface RowLook {
  trust?: Trust;
  /** Whole row red: the attribution is not trustworthy. */
  alarm?: boolean;
  dim?: boolean;
  /** Waits for a verdict: yellow. */
  pending?: boolean;
  /** Waits, and its deadline is near: on a yellow background. */
  urgent?: boolean;
}

export interface TableProps<R, S extends string> {
  columns: readonly PlacedColumn<R, S>[];
  rows: readonly R[];
  look(row: R): RowLook;
  /** Index (into rows) of the first visible row, and of the selected row. */
  top: number;
  cursor: number;
  height: number;
  ctx: CellContext;
  sort?: SortSpec<S>;
  /** Width of the badge column (0: no badge column). */
  badgeWidth: number;
  /** The first `sticky` rows are drawn above the window that starts at `top` (pinned rows). */
  sticky?: number;
}

export function Table<R, S extends string>(props: TableProps<R, S>) {
  const { columns, rows, top, height, cursor, ctx, badgeWidth } = props;
  const g = glyphs(ctx.ascii);
  const header = columns
    .map((c) => {
      const mark = props.sort && c.sort === props.sort.column ? (props.sort.reverse ? g.sortUp : g.sortDown) : '';
      return pad(c.title + mark, c.size, c.align, ctx.ascii);
    })
    .join(' ');
  const lead = badgeWidth > 0 ? ' '.repeat(badgeWidth + 1) : '';
  const sticky = Math.min(props.sticky ?? 0, height);
  const visible = sticky > 0 ? [...rows.slice(0, sticky), ...rows.slice(top, top + height - sticky)] : rows.slice(top, top + height);
  const indexOf = (i: number): number => (i < sticky ? i : top + i - sticky);
  // Every row's text is as wide as the header: cells are padded to their column's size.
  const textWidth = displayWidth(header) + (badgeWidth > 0 ? 1 : 0);
  return (
    <>
      <Text bold>{lead + header}</Text>
      {visible.map((row, i) => {
        const look = props.look(row);
        const text = columns.map((c) => pad(c.cell(row, ctx), c.size, c.align, ctx.ascii)).join(' ');
        const selected = indexOf(i) === cursor;
        const badge = look.trust ? pad(g.badge[look.trust], badgeWidth, 'left', ctx.ascii) : ' '.repeat(badgeWidth);
        const badgeColor = look.alarm ? undefined : look.trust ? TRUST_COLOR[look.trust] : undefined;
        // The badge is its own node: the rest of the row is plain ASCII, which Ink measures on its
        // fast path (a non-ASCII character sends the whole line through grapheme segmentation).
        return (
          // Keyed by screen line, not by flow: when new flows push the table down (every frame under
          // load with the newest first), React updates the text of the same lines instead of
          // unmounting and mounting every row with its Ink and layout nodes (frame median 5.3 -> 4.0 ms
          // at 200x50, and far less garbage for the young-generation collections that set the p99).
          // Fixed-width Lines, so Ink does not keep every row text it ever drew (see Line.tsx).
          <Box key={i}>
            {badgeWidth > 0 ? (
              <Line width={badgeWidth}>
                <Text color={look.alarm ? 'red' : badgeColor} dimColor={look.dim || look.trust === 'gone'} inverse={selected}>
                  {badge}
                </Text>
              </Line>
            ) : null}
            <Line width={textWidth}>
              <Text
                color={look.alarm ? 'red' : look.urgent ? 'black' : look.pending ? 'yellow' : undefined}
                backgroundColor={look.urgent ? 'yellow' : undefined}
                dimColor={look.dim}
                inverse={selected}
              >
                {badgeWidth > 0 ? ' ' : ''}
                {text}
              </Text>
            </Line>
          </Box>
        );
      })}
    </>
  );
}
