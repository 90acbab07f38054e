import { Text } from 'ink';
import { HELP } from './keys.js';

export function Help({ height, ascii }: { height: number; ascii: boolean }) {
  const rows = HELP.slice(0, Math.max(height - 2, 0));
  return (
    <>
      <Text bold color="cyan">Keys (any key closes this help)</Text>
      {rows.map(([keys, what]) => (
        <Text key={keys} wrap="truncate">
          <Text bold>{(ascii ? keys.replace('↑ ↓', 'Up Down') : keys).padEnd(26)}</Text>
          {what}
        </Text>
      ))}
      <Text dimColor wrap="truncate">
        Badges: {ascii ? '[ok] secure | [!!] not secure (red row) | [x] process gone | [..] lookup pending' : '✔ secure · ⚠ not secure (red row) · ✖ process gone · … lookup pending'}
      </Text>
    </>
  );
}
