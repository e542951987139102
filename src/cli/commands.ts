/**
 * The sub-commands of `tg-janitor`. Each is thin: parse, open, call the library, print. What a command needs is
 * imported when it runs: the service, grammY and the database drivers take longer to load than `--help` may.
 */
import { formatIn, parseIso, systemClock } from '../clock.ts';
import { isJobName, JOB_NAMES } from '../job-names.ts';
import { backupCmd, exportCmd, importCmd, restoreCmd } from './data-commands.ts';
import { withStore, write } from './io.ts';
import { CliError, UsageError } from './errors.ts';
import type { Logger } from '../log.ts';
import type { Command } from './main.ts';

/**
 * For the long-running commands: a stray rejection is logged (message only: error objects can carry a bot token)
 * and the service keeps running; an uncaught exception is logged the same way before the process ends.
 */
function guardProcess(logger: Logger): void {
  process.on('unhandledRejection', (e) =>
    logger.error(
      { err: e instanceof Error ? e.message : String(e) },
      `❌ unhandled rejection (the service keeps running): ${e instanceof Error ? e.message : String(e)}`,
    ),
  );
  process.on('uncaughtException', (e) => {
    logger.fatal({ err: e.message }, `❌ uncaught exception: ${e.message}`);
    process.exit(1);
  });
}

/** Resolves with the name of the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

const start: Command = {
  name: 'start',
  summary: 'run the service: schedulers, bots, HTTP server; stays up until SIGINT/SIGTERM',
  usage:
    'Usage: tg-janitor start\n\nMigrates the database, starts the schedulers (and, with BOT_TOKEN, the bots), serves the status page,\n/healthz, /metrics and /verify, and runs until SIGINT or SIGTERM, then stops cleanly (exit 0).',
  options: {},
  async run(ctx) {
    const config = ctx.config();
    const logger = ctx.logger(config);
    guardProcess(logger);
    const stopped = untilSignal();
    const { startService } = await import('../service.ts');
    const service = await startService(config, logger);
    logger.info(
      {
        database: service.store.describe,
        timezone: config.timezone,
        owner: service.janitor.engine.owner,
        url: service.http.url,
      },
      '🟢 tg-janitor started',
    );
    const signal = await stopped;
    logger.info({ signal }, `🛑 ${signal} received, stopping`);
    await service.stop();
    logger.info('👋 tg-janitor stopped');
    return 0;
  },
};

const migrate: Command = {
  name: 'migrate',
  summary: 'create or upgrade the database schema',
  usage: 'Usage: tg-janitor migrate\n\nApplies every migration not yet applied to DATABASE_URL.',
  options: {},
  async run(ctx) {
    const config = ctx.config();
    await withStore(config, (store) => {
      ctx.stderr.write(`migrated ${store.describe}\n`);
      return Promise.resolve();
    });
    return 0;
  },
};

function parseNow(v: unknown): Date | undefined {
  if (v === undefined) return undefined;
  // The import's ISO reading: no offset = UTC (never the host's zone), and only real calendar dates.
  const text = v as string; // `--now` is a `type: 'string'` option: parseArgs gives a string
  const ms = parseIso(text);
  if (ms === null) throw new UsageError(`--now: "${text}" is not an ISO-8601 instant (e.g. 2026-11-28T20:00:00Z)`);
  return new Date(ms);
}

const run: Command = {
  name: 'run',
  summary: 'run one job now (manual run) and print its summary',
  usage: `Usage: tg-janitor run <job> [--now ISO] [--dry-run] [--json]\n\nJobs: ${JOB_NAMES.join(', ')}.\n  --now ISO   evaluate as if at this instant\n  --dry-run   report what would change (would_delete), change nothing\n  --json      print exactly one JSON object on stdout\nExit 0 when the run succeeded, 1 when it failed.`,
  options: { now: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
  async run(ctx, { values, positionals }) {
    const [job, ...extra] = positionals;
    if (!job || extra.length) throw new UsageError('expected one <job>', this.usage);
    if (!isJobName(job)) throw new UsageError(`unknown job "${job}" (one of ${JOB_NAMES.join(', ')})`, this.usage);
    const now = parseNow(values.now);
    const config = ctx.config();
    if ((job === 'message-deleter' || job === 'broadcast-deleter') && !config.botToken) {
      throw new CliError(
        `BOT_TOKEN is not set: ${job} talks to Telegram (set BOT_TOKEN, and BOT_API_ROOT for a local Bot API server)`,
        2,
      );
    }
    const logger = ctx.logger(config);
    const { createJanitor } = await import('../janitor.ts');
    const { formatSummary } = await import('../jobs/overview.ts');
    const janitor = await createJanitor({ config, logger });
    try {
      const r = await janitor.run(job, { now, dryRun: Boolean(values['dry-run']) });
      const out = {
        job: r.job,
        status: r.status,
        started_at: r.startedAt.toISOString(),
        finished_at: r.finishedAt.toISOString(),
        ...(now ? { evaluated_at: r.evaluatedAt.toISOString() } : {}),
        ...(values['dry-run'] ? { dry_run: true } : {}),
        ...r.summary,
        ...(r.error ? { error: r.error } : {}),
      };
      if (values.json) await write(ctx.stdout, `${JSON.stringify(out)}\n`);
      else {
        const counts = formatSummary(r.summary);
        await write(
          ctx.stdout,
          `${r.job} ${r.status}${counts ? `: ${counts}` : ''}${r.error ? ` (${r.error})` : ''} in ${r.finishedAt.getTime() - r.startedAt.getTime()} ms\n`,
        );
      }
      return r.status === 'ok' ? 0 : 1;
    } finally {
      await janitor.stop();
    }
  },
};

const jobs: Command = {
  name: 'jobs',
  summary: 'list the jobs with their schedules, next and last runs',
  usage:
    'Usage: tg-janitor jobs [--json]\n\nEvery job with its schedule (cron and in words), next run in TIMEZONE and last run.',
  options: { json: { type: 'boolean' } },
  async run(ctx, { values }) {
    const config = ctx.config();
    const { listJobs } = await import('../jobs/overview.ts');
    const { table } = await import('./format.ts');
    const list = await withStore(config, (store) => listJobs(config, store, systemClock.now()));
    if (values.json) {
      await write(ctx.stdout, `${JSON.stringify({ timezone: config.timezone, jobs: list })}\n`);
      return 0;
    }
    const rows = list.map((j) => [
      j.name,
      `${j.schedule} (${j.schedule_words})`,
      j.next_run_local ? `${j.next_run_local} ${config.timezone}` : '-',
      j.last_run
        ? `${j.last_run.status} ${formatIn(new Date(j.last_run.finished_at ?? j.last_run.started_at), config.timezone)}`
        : 'never',
    ]);
    await write(ctx.stdout, `${table(['JOB', 'SCHEDULE', 'NEXT RUN', 'LAST RUN'], rows).join('\n')}\n`);
    return 0;
  },
};

const status: Command = {
  name: 'status',
  summary: 'jobs, recent runs, pending deletions, broadcasts and health, from the database',
  usage:
    'Usage: tg-janitor status [--json]\n\nThe facts of the status page in the terminal (--json: the whole snapshot). Exit 0 when healthy, 1 when not.',
  options: { json: { type: 'boolean' } },
  async run(ctx, { values }) {
    const config = ctx.config();
    const { collectStatus } = await import('../jobs/status.ts');
    const { formatStatus } = await import('./format.ts');
    const s = await withStore(config, (store) =>
      collectStatus({ config, store, clock: systemClock, startedAt: null, telegram: Boolean(config.botToken) }),
    );
    if (values.json) await write(ctx.stdout, `${JSON.stringify(s)}\n`);
    else await write(ctx.stdout, formatStatus(s));
    return s.health.ok ? 0 : 1;
  },
};

const stats: Command = {
  name: 'stats',
  summary: "the day's figures for the last days: users, tokens, deliveries, deletions, broadcasts, analytics",
  usage:
    'Usage: tg-janitor stats [--days N] [--json]\n\nThe last N days (today included, default 14, at most 366), newest first: today so far, earlier days\nas the stats and analytics jobs wrote them (zeros, and no analytics, where they have not). Rates in --json\nare fractions 0-1, null where nothing was counted to divide by. --json prints {"days": [...]}.',
  options: { days: { type: 'string' }, json: { type: 'boolean' } },
  async run(ctx, { values }) {
    const text = typeof values.days === 'string' ? values.days : '14';
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > 366)
      throw new UsageError(`--days: expected a whole number from 1 to 366, got "${text}"`, this.usage);
    const config = ctx.config();
    const { recentStats, formatRate, formatRatio, formatSeconds } = await import('../jobs/analytics.ts');
    const { table } = await import('./format.ts');
    const days = await withStore(config, (store) => recentStats(store, config.timezone, systemClock.now(), n));
    if (values.json) {
      await write(ctx.stdout, `${JSON.stringify({ days })}\n`);
      return 0;
    }
    const head = ['DATE', 'USERS', 'NEW', 'ACTIVE', 'BLOCKED', 'TOKENS', 'VERIFIED', 'BYPASSED', 'FILES'];
    const more = ['DELETED', 'ON TIME', 'LATE', 'FAILED', 'BROADCASTS', 'REACHED', 'AUDIENCE'];
    const rates = ['VERIFIED%', 'BYPASSED%', 'BYPASSED% 7D', 'ON TIME%', 'P50', 'P99', 'FILES/ACTIVE', 'REACH%'];
    const rows = days.map((d) =>
      [
        d.date,
        d.users_total,
        d.users_new,
        d.users_active,
        d.users_blocked,
        d.tokens_created,
        d.tokens_verified,
        d.tokens_bypassed,
        d.files_delivered,
        d.deletions_done,
        d.deletions_on_time,
        d.deletions_late,
        d.deletions_failed,
        d.broadcasts_sent,
        d.recipients_reached,
        d.broadcast_audience,
      ]
        .map(String)
        .concat([
          formatRate(d.verification_rate),
          formatRate(d.bypass_rate),
          formatRate(d.bypass_rate_7d),
          formatRate(d.on_time_share),
          formatSeconds(d.lateness_p50_s),
          formatSeconds(d.lateness_p99_s),
          formatRatio(d.deliveries_per_active_user),
          formatRate(d.broadcast_reach),
        ]),
    );
    await write(ctx.stdout, `${table([...head, ...more, ...rates], rows).join('\n')}\n`);
    return 0;
  },
};

const demo: Command = {
  name: 'demo',
  summary: 'the whole service against a built-in Bot API emulator and a temporary database (no Telegram needed)',
  usage:
    'Usage: tg-janitor demo\n\nStarts the service with seeded users, tokens, deletions due within seconds and a short broadcast, with\nschedules compressed to seconds, and prints the status page URL. Uses HTTP_PORT when set, else a free port;\nignores DATABASE_URL, BOT_TOKEN and .env. Ctrl-C stops it and removes the temporary database.',
  options: {},
  async run(ctx) {
    // The demo's own settings: nothing from .env, and only the HTTP, time zone and log variables of the environment.
    const env = ctx.processEnv;
    const { loadConfig } = await import('../config.ts');
    const { startDemo } = await import('../demo/demo.ts');
    const config = loadConfig(
      {
        LOG_LEVEL: env.LOG_LEVEL,
        LOG_FORMAT: env.LOG_FORMAT,
        TIMEZONE: env.TIMEZONE,
        HTTP_PORT: env.HTTP_PORT,
        HTTP_HOST: env.HTTP_HOST,
      },
      { isTTY: Boolean((ctx.stderr as NodeJS.WriteStream).isTTY) },
    );
    const logger = ctx.logger(config);
    guardProcess(logger);
    const stopped = untilSignal();
    const d = await startDemo(env, logger);
    await write(
      ctx.stdout,
      `tg-janitor demo is running. Status page: ${d.url}\nPress Ctrl-C to stop (the temporary database is removed).\n`,
    );
    await stopped;
    await d.stop();
    await write(ctx.stdout, 'demo stopped\n');
    return 0;
  },
};

/** Every sub-command, in the order `--help` lists them. */
export const commands: Command[] = [
  start,
  migrate,
  run,
  jobs,
  status,
  stats,
  importCmd,
  exportCmd,
  backupCmd,
  restoreCmd,
  demo,
];
