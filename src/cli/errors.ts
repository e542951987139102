/** Errors a CLI command throws to choose its message and exit code. */

/** A usage error: exit code 2 with the command's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** An error whose message is for the user and whose exit code is given (2 = bad input). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
