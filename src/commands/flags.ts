// Flag parsing shared by every command: node:util parseArgs, with its errors turned into one line a
// person can act on ("unknown flag --bogus", "--socket needs a value") plus where to read the usage,
// exit status 2. parseArgs' own messages are long and, uncaught, end in a stack trace.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

/** `command` names the subcommand for the message and the help hint ('' for plain `flowtop`). */
export function parseFlags<T extends ParseArgsConfig>(command: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ strict: true, ...config });
  } catch (error) {
    throw usageErrorFor(command, error);
  }
}

/** The hint printed under every usage error of `command`. */
export function helpHint(command: string): string {
  return `run \`flowtop${command ? ` ${command}` : ''} --help\` for the usage`;
}

/** A UsageError for a parseArgs failure (or anything else thrown while parsing). */
export function usageErrorFor(command: string, error: unknown): UsageError {
  const prefix = command ? `${command}: ` : '';
  return new UsageError(`${prefix}${describeParseError(error)}`, helpHint(command));
}

/** One line for a parseArgs error, by its code; the first line of the message otherwise. */
export function describeParseError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const flag = /Option '(?:-\w, )?(--?[\w-]+)/.exec(message)?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = /Unknown option '([^']+)'/.exec(message)?.[1] ?? 'given';
      return `unknown flag ${name}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (flag && /does not take an argument/.test(message)) return `${flag} takes no value`;
      if (flag) return `${flag} needs a value`;
      break;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /Unexpected argument '([^']*)'/.exec(message)?.[1];
      return arg !== undefined ? `unexpected argument ${JSON.stringify(arg)}` : 'unexpected argument';
    }
  }
  return message.split('\n')[0] ?? 'bad command line';
}

/** True for the errors parseArgs throws (so the entry point can report one that slipped through). */
export function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
