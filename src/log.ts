/** The pino logger: JSON or pretty to stderr (stdout is for data), with secrets scrubbed. */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Options for {@link createLogger}. */
export interface LogOptions {
  /** pino level (default `info`). */
  level?: string;
  /** `pretty` or `json` (default `json`). */
  format?: 'pretty' | 'json';
  /** Strings that must never appear in output (bot tokens, passwords). */
  secrets?: (string | undefined)[];
  /** Where to write (default stderr, fd 2). */
  destination?: NodeJS.WritableStream;
}

/** Replaces every secret in `text` with `***`, including the `bot<token>` form of Bot API URLs. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('***');
  // A Bot API URL carries the token as /bot<id>:<secret>/ even when we were not told the token.
  return out.replace(/bot\d+:[A-Za-z0-9_-]{20,}/g, 'bot***');
}

/** A logger that writes to stderr and scrubs secrets from every line. */
export function createLogger(opts: LogOptions = {}): Logger {
  const secrets = opts.secrets ?? [];
  const scrub = { write: (line: string) => void target.write(redact(line, secrets)) };
  const target: { write(s: string): unknown } =
    opts.format === 'pretty'
      ? pretty({
          destination: 2,
          colorize: process.stderr.isTTY,
          translateTime: 'SYS:standard',
          ignore: 'pid,hostname',
        })
      : (opts.destination ?? process.stderr);
  return pino({ level: opts.level ?? 'info', base: undefined }, scrub);
}

/**
 * A rejection handler for work whose failure changes nothing the caller could act on (a chart counter, a courtesy
 * reply): the failure is logged at debug with `what`, never thrown.
 */
export function logAtDebug(logger: Logger, what: string, fields: object = {}): (e: unknown) => void {
  return (e) => logger.debug({ ...fields, err: e instanceof Error ? e.message : String(e) }, what);
}
