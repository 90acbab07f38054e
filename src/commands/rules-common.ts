// What every `flowtop rules` subcommand shares: its flags, the I/O it writes through, usage errors.
import { UsageError } from '../errors.js';
import { parseFlags } from './flags.js';
import { NATS_FLAG_OPTIONS } from '../fleet/connect-options.js';

export const RULES_HELP_STEP = 'run `flowtop rules --help` for the usage';

export function usageError(message: string): UsageError {
  return new UsageError(message, RULES_HELP_STEP);
}

export interface RulesIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  now: () => number;
  env: NodeJS.ProcessEnv;
}

export const OPTIONS = {
  json: { type: 'boolean' },
  any: { type: 'boolean' },
  allow: { type: 'boolean' },
  block: { type: 'boolean' },
  reject: { type: 'boolean' },
  identity: { type: 'string' },
  package: { type: 'string' },
  path: { type: 'string' },
  label: { type: 'string' },
  host: { type: 'string' },
  domain: { type: 'string' },
  address: { type: 'string' },
  cidr: { type: 'string' },
  port: { type: 'string' },
  protocol: { type: 'string' },
  direction: { type: 'string' },
  until: { type: 'string' },
  note: { type: 'string' },
  priority: { type: 'string' },
  format: { type: 'string' },
  'dry-run': { type: 'boolean' },
  default: { type: 'string' },
  'block-mode': { type: 'string' },
  'block-unpackaged': { type: 'string' },
  'allow-packaged': { type: 'string' },
  trust: { type: 'string' },
  rules: { type: 'string' },
  socket: { type: 'string', multiple: true },
  // fleet rules (rules-fleet.ts)
  ...NATS_FLAG_OPTIONS,
  all: { type: 'boolean' },
  'host-name': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Values = ReturnType<typeof parse>['values'];

export function parse(argv: string[]) {
  return parseFlags('rules', { args: argv, allowPositionals: true, options: OPTIONS });
}
