// Two kinds of failure, kept apart so people are told who must act (see docs/architecture.md).

/** Something the person can fix: the message says what happened and what to do next. Exit code 1. */
export class UserError extends Error {
  constructor(message: string, readonly nextStep?: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** A malformed command line. Exit code 2. */
export class UsageError extends UserError {
  constructor(message: string, nextStep = 'run `flowtop --help` for the usage') {
    super(message, nextStep, 2);
    this.name = 'UsageError';
  }
}

export function formatUserError(error: UserError): string {
  return `flowtop: ${error.message}${error.nextStep ? `\n  ${error.nextStep}` : ''}\n`;
}
