/**
 * The `tg-janitor` command line. Data goes to stdout, logs and errors to stderr; exit 0 on success, 1 when work
 * failed, 2 for bad usage, configuration or input.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { commands } from './commands.ts';
import { CliError, UsageError } from './errors.ts';

/** What a command gets. */
export interface CliContext {
  /** Loads and validates the configuration (throws ConfigError → exit 2). */
  config(): Config;
  /** A logger on stderr, made from the configuration. */
  logger(config: Config): Logger;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** The environment merged with `.env`. */
  env: Record<string, string | undefined>;
  /** The process environment alone (no `.env`): for `demo`, which must ignore the user's `.env`. */
  processEnv: Record<string, string | undefined>;
}

/** One sub-command. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(ctx: CliContext, parsed: { values: Record<string, unknown>; positionals: string[] }): Promise<number>;
}

function mainUsage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: tg-janitor <command> [options]',
    '',
    'Background schedulers for token-gated Telegram file bots.',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `tg-janitor <command> --help` for a command's options. Configuration comes from the environment and .env;",
    'see the README.',
  ].join('\n');
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(
  argv: string[],
  io: {
    stdout?: NodeJS.WritableStream;
    stderr?: NodeJS.WritableStream;
    stdin?: NodeJS.ReadableStream;
    env?: Record<string, string | undefined>;
  } = {},
): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const say = (s: string) => stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    (name ? stdout : stderr).write(`${mainUsage()}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version') {
    stdout.write('tg-janitor 0.1.0\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    say(`tg-janitor: unknown command "${name}"\n\n${mainUsage()}`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    say(
      `tg-janitor ${cmd.name}: ${(e as Error).message.replace(/\. To specify a positional.*$/s, '')}\n\n${cmd.usage}`,
    );
    return 2;
  }
  if (parsed.values.help) {
    stdout.write(`${cmd.usage}\n`);
    return 0;
  }
  // Loaded once a command runs: `--help` answers without zod, croner or pino.
  const { ConfigError, loadConfig, readEnvironment, secretsOf } = await import('../config.ts');
  const { createLogger } = await import('../log.ts');
  const env = io.env ?? readEnvironment();
  let cachedConfig: Config | undefined;
  const ctx: CliContext = {
    env,
    processEnv: io.env ?? process.env,
    stdout,
    stderr,
    stdin: io.stdin ?? process.stdin,
    config: () => (cachedConfig ??= loadConfig(env, { isTTY: Boolean((stderr as NodeJS.WriteStream).isTTY) })),
    logger: (c) => createLogger({ level: c.logLevel, format: c.logFormat, secrets: secretsOf(c) }),
  };
  try {
    return await cmd.run(ctx, parsed);
  } catch (e) {
    if (e instanceof ConfigError) {
      say(`tg-janitor: configuration error: ${e.message}`);
      return 2;
    }
    if (e instanceof UsageError) {
      say(`tg-janitor ${cmd.name}: ${e.message}\n\n${e.usage ?? cmd.usage}`);
      return 2;
    }
    if (e instanceof CliError) {
      say(`tg-janitor ${cmd.name}: ${e.message}`);
      return e.exitCode;
    }
    say(`tg-janitor ${cmd.name}: ${(e as Error)?.message ?? String(e)}`);
    return 1;
  }
}
