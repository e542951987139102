/**
 * Configuration: read from the environment (and an optional `.env` file), validated with zod before anything
 * runs. Every value has a default that follows the seed, so nothing needs setting to start.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { Cron } from 'croner';

import { isJobName, JOB_NAMES, type JobName } from './job-names.ts';

export { JOB_NAMES, isJobName, type JobName } from './job-names.ts';

/**
 * Thrown for a bad configuration value; `variable` names the environment variable, or the option when the library's
 * options were checked (`config.timezone`, `databaseUrl`). Exit code 2.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** True when `tz` is an IANA time zone this Node.js knows. */
export function isValidTimeZone(tz: string): boolean {
  if (!tz || !/^[A-Za-z0-9_+\-/]+$/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    // The answer to "is this a zone?": no.
    return false;
  }
}

/**
 * A PostgreSQL schema name for `?schema=`: lower-case, so the unquoted `search_path` and the quoted name agree
 * (PostgreSQL folds unquoted names to lower case).
 */
export const PG_SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/;

/** True for `sqlite:<path>` with a path, or a `postgres://` URL that parses with a host and a valid port. */
export function validDatabaseUrl(s: string): boolean {
  if (s.startsWith('sqlite:')) return s.replace(/^sqlite:(\/\/)?/, '').trim().length > 0;
  if (!/^postgres(ql)?:\/\//.test(s)) return false;
  try {
    const u = new URL(s);
    const schema = u.searchParams.get('schema');
    return u.hostname.length > 0 && (schema === null || PG_SCHEMA_NAME.test(schema));
  } catch {
    // Not a URL: not a valid DATABASE_URL, which the caller reports.
    return false;
  }
}

/** A cron expression (5 fields, or 6 with seconds first) that croner accepts; `off` disables the job. */
export function validateCron(expr: string): string | null {
  const fields = expr.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) return 'a cron expression has 5 fields, or 6 with seconds first';
  try {
    new Cron(expr, { paused: true });
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The ranges of the numbers the admin may change at run time; their environment defaults obey the same. */
export const SETTING_RANGES = {
  delete_after_minutes: { min: 1, max: 2880 },
  token_generation_limit: { min: 1, max: 1000 },
  media_access_count: { min: 1, max: 1000 },
} as const;

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, { message: `a whole number from ${min} to ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, { message: `at least ${min}` })
        .max(max, { message: `at most ${max}` }),
    );

const num = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, { message: `a number from ${min} to ${max}` })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { message: `at least ${min}` })
        .max(max, { message: `at most ${max}` }),
    );

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'true or false' })
  .transform((v) => ['true', '1', 'yes'].includes(v));

const intList = (min: number, max: number, what: string) =>
  z.string().transform((s, ctx) => {
    const parts = s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const out: number[] = [];
    for (const p of parts) {
      const n = Number(p);
      if (!/^-?\d+$/.test(p) || n < min || n > max || !Number.isSafeInteger(n)) {
        ctx.addIssue({ code: 'custom', message: `a comma-separated list of ${what}; "${p}" is not one` });
        return z.NEVER;
      }
      out.push(n);
    }
    return out;
  });

const url = (what: string) =>
  z.string().refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      // Not a URL: zod reports the variable.
      return false;
    }
  }, `an http(s) URL (${what})`);

const schedule = z.string().transform((s, ctx) => {
  const v = s.trim();
  if (v.toLowerCase() === 'off') return 'off' as const;
  const err = validateCron(v);
  if (err) {
    ctx.addIssue({
      code: 'custom',
      message: `a cron expression ("m h dom mon dow", optional seconds first) or "off": ${err}`,
    });
    return z.NEVER;
  }
  return v;
});

/**
 * The environment variables and what they accept. Keys are the variable names; each default is the value an unset
 * (or empty) variable takes, in its parsed form. `.env.example` lists them all (a test keeps it in step).
 */
export const envSchema = z.object({
  DATABASE_URL: z
    .string()
    .default('sqlite:./data/tg-janitor.db')
    .refine(
      validDatabaseUrl,
      'sqlite:<path> or postgres://user:password@host:port/db (optionally ?schema=name, lower-case letters, digits and _)',
    ),
  TIMEZONE: z
    .string()
    .default('UTC')
    .refine(isValidTimeZone, 'an IANA time zone name such as UTC, Europe/Berlin or Asia/Kolkata'),
  TOKEN_EXPIRY_DAYS: num(0.001, 365).default(2),
  TOKEN_CLEANUP_HOURS: intList(0, 23, 'hours 0-23')
    .default([0, 12])
    .refine((a) => a.length > 0, 'at least one hour 0-23'),
  TOKEN_GENERATION_LIMIT: int(
    SETTING_RANGES.token_generation_limit.min,
    SETTING_RANGES.token_generation_limit.max,
  ).default(15),
  DELETE_AFTER_MINUTES: int(SETTING_RANGES.delete_after_minutes.min, SETTING_RANGES.delete_after_minutes.max).default(
    30,
  ),
  MEDIA_ACCESS_COUNT: int(SETTING_RANGES.media_access_count.min, SETTING_RANGES.media_access_count.max).default(5),
  BOT_TOKEN: z
    .string()
    .regex(/^\d+:[A-Za-z0-9_-]+$/, 'a bot token from @BotFather, like 123456:ABC-DEF')
    .optional(),
  BOT_API_ROOT: url('the Bot API server').default('https://api.telegram.org'),
  ADMIN_IDS: intList(1, Number.MAX_SAFE_INTEGER, 'Telegram user ids').default([]),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  LOG_FORMAT: z.enum(['pretty', 'json'], { message: 'pretty or json' }).optional(),
  HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HTTP_PORT: int(0, 65535).default(8080),
  // Set by the platform (Heroku, Koyeb, Render, Railway), never by the operator: see httpAddress.
  PORT: int(0, 65535).optional(),
  SCHEDULE_TOKEN_CLEANUP: schedule.optional(),
  SCHEDULE_MESSAGE_DELETER: schedule.default('* * * * *'),
  SCHEDULE_BROADCAST_DELETER: schedule.default('0 * * * *'),
  SCHEDULE_TOKEN_COUNT_RESET: schedule.default('0 0 * * *'),
  SCHEDULE_STATS: schedule.default('5 0 * * *'),
  SCHEDULE_HEALTH_CHECK: schedule.default('*/5 * * * *'),
  SCHEDULE_BACKUP: schedule.default('0 3 * * *'),
  BACKUP_DIR: z.string().min(1, 'a folder path').default('./data/backups'),
  BACKUP_KEEP: int(1, 1000).default(7),
  SCHEDULE_ANALYTICS: schedule.default('0 * * * *'),
  BYPASS_ALERT_RATE: num(0, 1).default(0.3),
  CATCH_UP_MISSED: bool.default(true),
  SHUTDOWN_TIMEOUT_S: int(0, 3600).default(30),
  JOB_LEASE_S: int(5, 3600).default(60),
  JOB_RUNS_KEEP_DAYS: int(0, 3650).default(14),
  CLAIM_LEASE_S: int(5, 3600).default(60),
  TELEGRAM_RATE: num(0, 10_000).default(25),
  TELEGRAM_RETRIES: int(0, 10).default(2),
  TELEGRAM_TIMEOUT_S: int(1, 600).default(30),
  BROADCAST_PAID: bool.default(false),
  BROADCAST_PAID_RATE: int(1, 1000).default(1000),
  STORAGE_CHANNEL_ID: z
    .string()
    .regex(/^-100\d{5,}$/, 'a channel id like -1001234567890')
    .transform(Number)
    .optional(),
  PUBLIC_URL: url('where users reach this service, e.g. https://files.example.com').optional(),
  SHORTENER_API_URL: url('a shortener API URL template')
    .refine((s) => s.includes('{url}'), 'a URL template containing {url}')
    .optional(),
  SHORTENER_DOMAINS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((d) => d.trim().toLowerCase())
        .filter(Boolean),
    )
    .refine(
      (a) => a.every((d) => /^[a-z0-9.-]+\.[a-z]{2,}$/.test(d)),
      'a comma-separated list of domains like gplinks.co',
    )
    .default([]),
  BYPASS_MIN_SECONDS: int(0, 86_400).default(120),
  ADMIN_BOT_TOKEN: z
    .string()
    .regex(/^\d+:[A-Za-z0-9_-]+$/, 'a bot token from @BotFather, like 123456:ABC-DEF')
    .optional(),
  WEBHOOK_URL: url('the public HTTPS URL Telegram posts updates to').optional(),
  WEBHOOK_SECRET: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,256}$/, '1-256 characters A-Z, a-z, 0-9, _ and -')
    .optional(),
  STATUS_TOKEN: z.string().min(8, 'at least 8 characters').optional(),
  STATUS_REFRESH_S: int(2, 3600).default(15),
});

/** The validated configuration. */
export interface Config {
  /** `sqlite:<path>` (default `sqlite:./data/tg-janitor.db`) or `postgres://…`. */
  databaseUrl: string;
  /** IANA time zone for cron times and "today" (default `UTC`). */
  timezone: string;
  /** Days a verification token lives (default 2). */
  tokenExpiryDays: number;
  /** Hours of the day token cleanup runs (default `[0, 12]`). */
  tokenCleanupHours: number[];
  /** Tokens a user may create per day, until overridden by the `token_generation_limit` setting (default 15). */
  tokenGenerationLimit: number;
  /** Minutes until delivered files are deleted, until overridden by the `delete_after_minutes` setting (default 30). */
  deleteAfterMinutes: number;
  /** File accesses granted by one verification, until overridden by `media_access_count` (default 5). */
  mediaAccessCount: number;
  /** Bot token; only commands that talk to Telegram need it. Never logged. */
  botToken: string | undefined;
  /** Bot API server root (default `https://api.telegram.org`). */
  botApiRoot: string;
  /** Telegram user ids allowed to use admin commands (default none). */
  adminIds: number[];
  /** pino level (default `info`). */
  logLevel: string;
  /** `pretty` on a TTY, else `json` (default by TTY). */
  logFormat: 'pretty' | 'json';
  /** HTTP server host (default `127.0.0.1`; `0.0.0.0` when the platform's `PORT` gives the port). */
  httpHost: string;
  /** HTTP server port, `0` = any free port (default 8080; the platform's `PORT` when set, unless `HTTP_PORT` is). */
  httpPort: number;
  /** Cron expression per job, or `off` (defaults from the seed). */
  schedules: Record<JobName, string>;
  /**
   * Admins are told (once per day) when the share of a day's tokens that were bypassed is above this, 0–1, with at
   * least 20 tokens made that day (default 0.3).
   */
  bypassAlertRate: number;
  /** Run a job once at start when its last tick passed while the service was down (default true). */
  catchUpMissed: boolean;
  /** Seconds `stop()` waits for runs in flight (default 30). */
  shutdownTimeoutS: number;
  /** Seconds a job run's lease lasts before another process may call it abandoned (default 60; renewed while it runs). */
  jobLeaseS: number;
  /** Days of job run history kept; each job's latest run is always kept; 0 = keep all (default 14). */
  jobRunsKeepDays: number;
  /** Seconds a claimed pending deletion stays with one process (default 60). */
  claimLeaseS: number;
  /** Telegram calls per second for the whole process, `0` = unlimited (default 25). */
  telegramRate: number;
  /** Retries of a 429/5xx inside one call before the work is kept for later (default 2). */
  telegramRetries: number;
  /** Seconds before a Bot API call times out (default 30). */
  telegramTimeoutS: number;
  /**
   * Broadcast copies are sent with `allow_paid_broadcast` (Bot API 7.11): Telegram lets them past its free ~30
   * messages a second, up to 1000, each one over the free 30 costing 0.1 Telegram Stars from the bot's balance
   * (default false).
   */
  broadcastPaid: boolean;
  /**
   * Paid broadcast copies per second, 1–1000, spaced apart from `telegramRate`: they take no slot of it (default
   * 1000, Telegram's most).
   */
  broadcastPaidRate: number;
  /** The channel where files live (the bot is its admin); needed for file delivery. */
  storageChannelId: number | undefined;
  /** Where users reach this service (verify links); default: the local HTTP address, with a warning. */
  publicUrl: string | undefined;
  /** Shortener API template with `{url}`; verify links go through it when set. */
  shortenerApiUrl: string | undefined;
  /** Referer domains a verification must come from (subdomains count); empty = no referer check. */
  shortenerDomains: string[];
  /** A verification sooner than this after the token was made counts as bypassed (default 120). */
  bypassMinSeconds: number;
  /** A separate admin bot's token; admin commands then live there. Never logged. */
  adminBotToken: string | undefined;
  /** Receive updates by webhook at this URL (its path is served by the HTTP server) instead of long polling. */
  webhookUrl: string | undefined;
  /** Telegram's `secret_token` for the webhook. */
  webhookSecret: string | undefined;
  /** Token for the status page and /metrics from non-loopback addresses. */
  statusToken: string | undefined;
  /** Seconds between the status page's own refreshes (default 15). */
  statusRefreshS: number;
  /** The folder backups go in, one sub-folder each (default `./data/backups`). */
  backupDir: string;
  /** Backups kept, 1–1000: older ones are removed once a new one is checked (default 7). */
  backupKeep: number;
}

/** The seed's token-cleanup schedule: on the hour, at each of TOKEN_CLEANUP_HOURS. */
export function tokenCleanupSchedule(hours: readonly number[]): string {
  return `0 ${hours.join(',')} * * *`;
}

/** Paths the HTTP server serves itself; the webhook needs its own. */
const RESERVED_PATHS = ['/', '/verify', '/healthz', '/metrics', '/status.json'];

/** The secret values of a configuration, as the logger must scrub them (trimmed, as the config holds them). */
export function secretsOf(
  c: Pick<Config, 'botToken' | 'adminBotToken' | 'statusToken' | 'webhookSecret' | 'shortenerApiUrl'>,
): string[] {
  return [c.botToken, c.adminBotToken, c.statusToken, c.webhookSecret, c.shortenerApiUrl].filter((v): v is string =>
    Boolean(v),
  );
}

/** Variables whose values are secret (or may hold a secret): errors never echo them. */
const SECRET_VARS = new Set([
  'BOT_TOKEN',
  'DATABASE_URL',
  'ADMIN_BOT_TOKEN',
  'STATUS_TOKEN',
  'WEBHOOK_SECRET',
  'WEBHOOK_URL',
  'SHORTENER_API_URL',
]);

/**
 * Validates `env` and returns the configuration. Empty strings count as unset.
 * @throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: Record<string, string | undefined>, opts: { isTTY?: boolean } = {}): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v.trim() !== '') input[key] = v.trim();
  }
  const shown = (variable: string) => JSON.stringify(input[variable] ?? '');
  return parseConfig(input, { ...opts, name: (variable) => variable, shown });
}

/** The error for a setting's bad value: named as the caller spells it, its value shown unless it is secret. */
function invalid(variable: string, name: string, shown: string, expected: string): ConfigError {
  const value = SECRET_VARS.has(variable) ? '' : `=${shown}`;
  return new ConfigError(name, `${name}${value} is not valid: expected ${expected}`);
}

/** How {@link parseConfig} speaks of a setting in errors: its name, and its value as given (never a secret's). */
interface Naming {
  isTTY?: boolean;
  name: (variable: string) => string;
  shown: (variable: string) => string;
}

/** Validates settings in the environment's string form (keys are the variables) and builds the configuration. */
function parseConfig(input: Record<string, string>, n: Naming): Config {
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw invalid(variable, n.name(variable), n.shown(variable), issue.message);
  }
  const e = parsed.data;
  const [hookUrl, hookSecret, botToken] = [n.name('WEBHOOK_URL'), n.name('WEBHOOK_SECRET'), n.name('BOT_TOKEN')];
  // Without Telegram's secret token anyone who learns the webhook path could post updates as an admin.
  if (e.WEBHOOK_URL && !e.WEBHOOK_SECRET) {
    const why = 'Telegram sends it with every update, so forged updates are refused';
    throw new ConfigError(hookSecret, `${hookSecret} is required with ${hookUrl}: ${why}`);
  }
  if (e.WEBHOOK_URL && !e.BOT_TOKEN) {
    const why = "the webhook receives the user bot's updates";
    throw new ConfigError(hookUrl, `${hookUrl} is set but ${botToken} is not: ${why}`);
  }
  if (e.WEBHOOK_URL && RESERVED_PATHS.includes(new URL(e.WEBHOOK_URL).pathname)) {
    const served = `${RESERVED_PATHS.join(', ')} (the service serves those); use e.g. /telegram/<something secret>`;
    throw new ConfigError(hookUrl, `${hookUrl}'s path must not be one of ${served}`);
  }
  const hours = [...new Set(e.TOKEN_CLEANUP_HOURS)].sort((a, b) => a - b);
  return {
    databaseUrl: e.DATABASE_URL,
    timezone: e.TIMEZONE,
    tokenExpiryDays: e.TOKEN_EXPIRY_DAYS,
    tokenCleanupHours: hours,
    tokenGenerationLimit: e.TOKEN_GENERATION_LIMIT,
    deleteAfterMinutes: e.DELETE_AFTER_MINUTES,
    mediaAccessCount: e.MEDIA_ACCESS_COUNT,
    botToken: e.BOT_TOKEN,
    botApiRoot: e.BOT_API_ROOT.replace(/\/+$/, ''),
    adminIds: e.ADMIN_IDS,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (n.isTTY ? 'pretty' : 'json'),
    ...httpAddress(input, e),
    schedules: {
      'token-cleanup': e.SCHEDULE_TOKEN_CLEANUP ?? tokenCleanupSchedule(hours),
      'message-deleter': e.SCHEDULE_MESSAGE_DELETER,
      'broadcast-deleter': e.SCHEDULE_BROADCAST_DELETER,
      'token-count-reset': e.SCHEDULE_TOKEN_COUNT_RESET,
      stats: e.SCHEDULE_STATS,
      'health-check': e.SCHEDULE_HEALTH_CHECK,
      backup: e.SCHEDULE_BACKUP,
      analytics: e.SCHEDULE_ANALYTICS,
    },
    bypassAlertRate: e.BYPASS_ALERT_RATE,
    catchUpMissed: e.CATCH_UP_MISSED,
    shutdownTimeoutS: e.SHUTDOWN_TIMEOUT_S,
    jobLeaseS: e.JOB_LEASE_S,
    jobRunsKeepDays: e.JOB_RUNS_KEEP_DAYS,
    claimLeaseS: e.CLAIM_LEASE_S,
    telegramRate: e.TELEGRAM_RATE,
    telegramRetries: e.TELEGRAM_RETRIES,
    telegramTimeoutS: e.TELEGRAM_TIMEOUT_S,
    broadcastPaid: e.BROADCAST_PAID,
    broadcastPaidRate: e.BROADCAST_PAID_RATE,
    storageChannelId: e.STORAGE_CHANNEL_ID,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    shortenerApiUrl: e.SHORTENER_API_URL,
    shortenerDomains: e.SHORTENER_DOMAINS,
    bypassMinSeconds: e.BYPASS_MIN_SECONDS,
    adminBotToken: e.ADMIN_BOT_TOKEN,
    webhookUrl: e.WEBHOOK_URL,
    webhookSecret: e.WEBHOOK_SECRET,
    statusToken: e.STATUS_TOKEN,
    statusRefreshS: e.STATUS_REFRESH_S,
    backupDir: e.BACKUP_DIR,
    backupKeep: e.BACKUP_KEEP,
  };
}

/**
 * Where the HTTP server listens. `PORT` is the platform's (Heroku, Koyeb, Render, Railway): its router reaches the
 * process from outside on that port, so, unless `HTTP_PORT` is set, it gives the port and — unless `HTTP_HOST` is set
 * — every interface (`0.0.0.0`). `HTTP_PORT` set is the operator's choice and wins entirely, the host included: an
 * operator who chose the port keeps loopback even where some tool happens to export a `PORT`.
 * `input` holds only the variables that were set, so a default is told apart from the same value written out.
 */
function httpAddress(
  input: Record<string, string>,
  e: Pick<z.infer<typeof envSchema>, 'HTTP_HOST' | 'HTTP_PORT' | 'PORT'>,
): Pick<Config, 'httpHost' | 'httpPort'> {
  const platformPort = input.HTTP_PORT === undefined ? e.PORT : undefined;
  if (platformPort === undefined) return { httpHost: e.HTTP_HOST, httpPort: e.HTTP_PORT };
  return { httpHost: input.HTTP_HOST === undefined ? '0.0.0.0' : e.HTTP_HOST, httpPort: platformPort };
}

/** What kind of JavaScript value an option takes, before it is written in the environment's string form. */
type OptionKind = 'string' | 'number' | 'boolean' | 'numbers' | 'strings';

/** An environment variable the schema knows. */
type Variable = keyof typeof envSchema.shape;

/** Each option of {@link Config} (but `schedules`) with its environment variable and kind. */
const OPTIONS: Record<Exclude<keyof Config, 'schedules'>, readonly [variable: Variable, kind: OptionKind]> = {
  databaseUrl: ['DATABASE_URL', 'string'],
  timezone: ['TIMEZONE', 'string'],
  tokenExpiryDays: ['TOKEN_EXPIRY_DAYS', 'number'],
  tokenCleanupHours: ['TOKEN_CLEANUP_HOURS', 'numbers'],
  tokenGenerationLimit: ['TOKEN_GENERATION_LIMIT', 'number'],
  deleteAfterMinutes: ['DELETE_AFTER_MINUTES', 'number'],
  mediaAccessCount: ['MEDIA_ACCESS_COUNT', 'number'],
  botToken: ['BOT_TOKEN', 'string'],
  botApiRoot: ['BOT_API_ROOT', 'string'],
  adminIds: ['ADMIN_IDS', 'numbers'],
  logLevel: ['LOG_LEVEL', 'string'],
  logFormat: ['LOG_FORMAT', 'string'],
  httpHost: ['HTTP_HOST', 'string'],
  httpPort: ['HTTP_PORT', 'number'],
  bypassAlertRate: ['BYPASS_ALERT_RATE', 'number'],
  catchUpMissed: ['CATCH_UP_MISSED', 'boolean'],
  shutdownTimeoutS: ['SHUTDOWN_TIMEOUT_S', 'number'],
  jobLeaseS: ['JOB_LEASE_S', 'number'],
  jobRunsKeepDays: ['JOB_RUNS_KEEP_DAYS', 'number'],
  claimLeaseS: ['CLAIM_LEASE_S', 'number'],
  telegramRate: ['TELEGRAM_RATE', 'number'],
  telegramRetries: ['TELEGRAM_RETRIES', 'number'],
  telegramTimeoutS: ['TELEGRAM_TIMEOUT_S', 'number'],
  broadcastPaid: ['BROADCAST_PAID', 'boolean'],
  broadcastPaidRate: ['BROADCAST_PAID_RATE', 'number'],
  storageChannelId: ['STORAGE_CHANNEL_ID', 'number'],
  publicUrl: ['PUBLIC_URL', 'string'],
  shortenerApiUrl: ['SHORTENER_API_URL', 'string'],
  shortenerDomains: ['SHORTENER_DOMAINS', 'strings'],
  bypassMinSeconds: ['BYPASS_MIN_SECONDS', 'number'],
  adminBotToken: ['ADMIN_BOT_TOKEN', 'string'],
  webhookUrl: ['WEBHOOK_URL', 'string'],
  webhookSecret: ['WEBHOOK_SECRET', 'string'],
  statusToken: ['STATUS_TOKEN', 'string'],
  statusRefreshS: ['STATUS_REFRESH_S', 'number'],
  backupDir: ['BACKUP_DIR', 'string'],
  backupKeep: ['BACKUP_KEEP', 'number'],
};

/** The variable of a job's schedule: `token-cleanup` → `SCHEDULE_TOKEN_CLEANUP`. */
const scheduleVariable = (job: JobName) => `SCHEDULE_${job.toUpperCase().replace(/-/g, '_')}` as Variable;

/** Each variable's option name, as errors about options say it: `TIMEZONE` → `config.timezone`. */
const OPTION_NAMES = new Map<string, string>([
  ...Object.entries(OPTIONS).map(([key, [variable]]) => [variable, `config.${key}`] as const),
  ...JOB_NAMES.map((job) => [scheduleVariable(job), `config.schedules['${job}']`] as const),
]);

const KIND_WORDS: Record<OptionKind, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  numbers: 'an array of numbers',
  strings: 'an array of strings',
};

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`);

/** `v` in the environment's string form, or null when it is not of `kind`. */
function asEnvString(v: unknown, kind: OptionKind): string | null {
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : null;
    case 'number':
      return typeof v === 'number' ? String(v) : null;
    case 'boolean':
      return typeof v === 'boolean' ? String(v) : null;
    case 'numbers':
      return Array.isArray(v) && v.every((x) => typeof x === 'number') ? v.join(',') : null;
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(',') : null;
  }
}

// JSON would show NaN and Infinity as null.
const shownValue = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v));

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The configuration of the library's `createJanitor({ config, databaseUrl })`, validated with the same schema as the
 * environment: each option is written in its variable's string form and checked by that variable's rules, so the
 * same values are accepted and the errors say the same. Options left out (or `undefined`) take the environment's
 * defaults (the process environment itself is not read); token cleanup follows `tokenCleanupHours` unless
 * `schedules['token-cleanup']` is given. `databaseUrl` wins over `config.databaseUrl`.
 * @throws ConfigError naming the option (`config.timezone`, `config.schedules['token-cleanup']`, `databaseUrl`) for
 *   an unknown key, a value of the wrong type or one out of range, saying what is accepted; a secret's value is never
 *   shown.
 */
export function configFromOptions(config: unknown = {}, databaseUrl?: unknown): Config {
  if (!isRecord(config)) throw new ConfigError('config', `config must be an object of options, not ${typeOf(config)}`);
  const input: Record<string, string> = {};
  // The option each variable came from, and the value given, for the error messages.
  const given = new Map<string, { name: string; value: unknown }>();
  const put = (variable: Variable, name: string, value: unknown, kind: OptionKind) => {
    if (value === undefined) return;
    const text = asEnvString(value, kind);
    if (text === null) {
      throw new ConfigError(name, `${name} is not valid: expected ${KIND_WORDS[kind]}, got ${typeOf(value)}`);
    }
    // Each value on its own, with its variable's rules: `config.databaseUrl` is checked even when `databaseUrl`
    // replaces it.
    const field = envSchema.shape[variable].safeParse(text);
    if (!field.success) throw invalid(variable, name, shownValue(value), field.error.issues[0]!.message);
    input[variable] = text;
    given.set(variable, { name, value });
  };
  for (const [key, value] of Object.entries(config)) {
    if (key === 'schedules') continue;
    if (!Object.hasOwn(OPTIONS, key)) {
      const known = [...Object.keys(OPTIONS), 'schedules'].join(', ');
      throw new ConfigError(`config.${key}`, `config.${key} is not an option; the options are ${known}`);
    }
    const [variable, kind] = OPTIONS[key as keyof typeof OPTIONS];
    put(variable, `config.${key}`, value, kind);
  }
  const schedules = config.schedules;
  if (schedules !== undefined) {
    if (!isRecord(schedules)) {
      const what = `an object of job name → cron expression or "off", not ${typeOf(schedules)}`;
      throw new ConfigError('config.schedules', `config.schedules must be ${what}`);
    }
    for (const [job, value] of Object.entries(schedules)) {
      const name = `config.schedules['${job}']`;
      if (!isJobName(job)) {
        throw new ConfigError(name, `${name} is not a job; the jobs are ${JOB_NAMES.join(', ')}`);
      }
      put(scheduleVariable(job), name, value, 'string');
    }
  }
  put('DATABASE_URL', 'databaseUrl', databaseUrl, 'string');
  return parseConfig(input, {
    name: (variable) => given.get(variable)?.name ?? OPTION_NAMES.get(variable) ?? variable,
    shown: (variable) => shownValue(given.get(variable)?.value ?? ''),
  });
}

/** The process environment merged over `.env` in `cwd` when one exists (the environment wins). */
export function readEnvironment(cwd = process.cwd()): Record<string, string | undefined> {
  const path = `${cwd}/.env`;
  const fromFile = existsSync(path) ? parseEnv(readFileSync(path, 'utf8')) : {};
  return { ...fromFile, ...process.env };
}
