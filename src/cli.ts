// Entry point: picks one command from argv and runs it. Each command lives in src/commands/ and parses
// its own flags (node:util parseArgs), so this file stays a table.
import { UserError, formatUserError } from './errors.js';
import { isParseArgsError, usageErrorFor } from './commands/flags.js';
import { exitQuietlyOnClosedPipe } from './pipes.js';
import { asciiWrites, printsText } from './app/ascii-text.js';
import { wantAscii } from './ui/badges.js';
import { VERSION } from './version.js';

export type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  agent: { summary: 'the Linux extension: hold new connections in NFQUEUE and serve verdicts (root)', load: async () => (await import('./commands/agent.js')).run },
  demo: { summary: 'serve a recorded scenario as an extension on a Unix socket', load: async () => (await import('./commands/demo.js')).run },
  inspect: { summary: 'show what flowtop knows about a live process (PID…, or --token HEX)', load: async () => (await import('./commands/inspect.js')).run },
  rules: { summary: 'list, add, remove, export, import and test rules (list|add|rm|export|import|test|policy)', load: async () => (await import('./commands/rules.js')).run },
  history: { summary: 'what connected: flows, top processes/hosts/domains/users by traffic, events (top|events)', load: async () => (await import('./commands/history.js')).run },
  list: { summary: 'print one snapshot of current flows (--json) or stream them (--jsonl)', load: async () => (await import('./commands/list.js')).run },
};

export function usage(): string {
  const lines = [
    'flowtop — who is talking to the network, and how sure we are',
    '',
    'Usage:',
    '  flowtop [--socket PATH]... [--demo [SCENARIO]] [--ascii] [--max-flows N]',
    '                            live TUI; with no extension socket, a passive monitor of this machine',
    '  flowtop --once --json     one snapshot of current flows as JSON (--jsonl to stream)',
    '  flowtop --nats URL        a fleet: the flows of every agent on that NATS server in one table, decided',
    '                            from here (the agent\'s connection flags: --nats-creds FILE, --nats-nkey FILE,',
    '                            --nats-user U --nats-password-file F, --nats-ca FILE, --nats-prefix P, --nats-insecure;',
    '                            and --replay DUR; docs/fleet.md); list --nats … --json prints them',
  ];
  for (const [name, { summary }] of Object.entries(COMMANDS)) lines.push(`  flowtop ${name.padEnd(18)} ${summary}`);
  lines.push('', 'Run `flowtop COMMAND --help` for the flags of one command.', 'Protocol and docs: docs/protocol.md, README.md');
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  exitQuietlyOnClosedPipe(undefined, { keepRunning: first === 'agent' });
  try {
    if (first === '--help' || first === '-h' || first === 'help') {
      process.stdout.write(usage());
      return 0;
    }
    if (first === '--version' || first === '-V') {
      process.stdout.write(`flowtop ${VERSION}\n`);
      return 0;
    }
    const command = first !== undefined ? COMMANDS[first] : undefined;
    if (command) {
      if (printsText(first!, rest) && wantAscii(process.env, false)) {
        asciiWrites(process.stdout);
        asciiWrites(process.stderr);
      }
      return await (await command.load())(rest);
    }
    const tui = (await import('./commands/tui.js')).run;
    return await tui(argv);
  } catch (error) {
    if (error instanceof UserError) {
      process.stderr.write(formatUserError(error));
      return error.exitCode;
    }
    if (isParseArgsError(error)) {
      const usage = usageErrorFor('', error);
      process.stderr.write(formatUserError(usage));
      return usage.exitCode;
    }
    throw error;
  }
}
