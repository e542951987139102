/**
 * The library API: the seed's schedulers for a bot author to embed in their own grammY bot.
 *
 * ```ts
 * const janitor = await createJanitor({ databaseUrl: 'sqlite:./data/bot.db', bot });
 * janitor.start();
 * await janitor.run('token-cleanup');
 * await janitor.stop();
 * ```
 */
import { configFromOptions, isJobName, secretsOf, type Config, type JobName } from './config.ts';
import { formatIn, systemClock, type Clock } from './clock.ts';
import { createLogger, type Logger } from './log.ts';
import { openStore, type Store } from './store/db.ts';
import { migrateToLatest } from './store/migrations.ts';
import { Engine } from './scheduler/engine.ts';
import { newOwnerId } from './scheduler/run.ts';
import type { AnyJob, RunContext, RunResult } from './scheduler/job.ts';
import { jobWaker, type Waker } from './scheduler/waker.ts';
import {
  buildJobs,
  type JobOf,
  type JobSummaries,
  type RunResultOf,
  type SeedJob,
  type SeedRunResult,
  type WakeReport,
} from './jobs/registry.ts';
import type { ScheduleDeletionInput } from './jobs/message-deleter.ts';
import { asOwnCalls, createTelegram, instrument, type Telegram, type TelegramOptions } from './telegram/client.ts';
import { insertDeletion } from './store/deletions.ts';
import type { Api, RawApi } from 'grammy';
import type { Broadcast } from './store/schema.ts';

export type { ScheduleDeletionInput };

/** Options for {@link createJanitor}. */
export interface JanitorOptions {
  /** `sqlite:<path>` or `postgres://…` (default: `config.databaseUrl`, i.e. `sqlite:./data/tg-janitor.db`). */
  databaseUrl?: string;
  /** An open store to use instead of `databaseUrl` (not closed by `stop()`). */
  store?: Store;
  /** Settings over the defaults of {@link loadConfig} (timezone, schedules — any subset —, …). */
  config?: Partial<Omit<Config, 'schedules'>> & { schedules?: Partial<Record<JobName, string>> };
  /** Where "now" comes from (default the system clock). */
  clock?: Clock;
  /** A pino logger (default JSON to stderr at `info`). */
  logger?: Logger;
  /** Apply migrations on create (default true). */
  migrate?: boolean;
  /**
   * A grammY `Bot` (of any context and Api flavour: whatever has a Bot API `api`) or `Api` for the Telegram jobs
   * (default: one made from `config.botToken`, if set).
   */
  bot?: { readonly api: Api<RawApi> } | Api<RawApi>;
  /** Hooks for metrics. */
  hooks?: JanitorHooks;
}

/** Callbacks the service uses for metrics; each must not throw. */
export interface JanitorHooks {
  /** After every recorded run; `r.job` narrows `r.summary` to that job's summary type. */
  onRunFinished?: (r: SeedRunResult) => void;
  onTelegramCall?: (method: string, outcome: string, errorCode?: number) => void;
  onDeletionLateness?: (seconds: number) => void;
  /** After an on-time wake-up did some work (these runs are not recorded in job_runs). */
  onWakeRun?: (r: WakeReport) => void;
  onBroadcastProgress?: (broadcastId: number, left: number) => void;
  /** When the deleter takes a broadcast whose deadline came while it was still being sent (tell the admin). */
  onBroadcastCut?: (b: Broadcast) => void;
}

/** Options of a one-off run. */
export interface RunOptions {
  /** Evaluate as if at this instant (default now). */
  now?: Date;
  /** Report what would change, change nothing, record nothing (default false). */
  dryRun?: boolean;
}

/** What a {@link Janitor} is made of; {@link createJanitor} validates the options and builds these. */
export interface JanitorParts {
  config: Config;
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Whether `stop()` closes the store (the janitor opened it). */
  ownsStore: boolean;
  /** The Bot API client, when a bot or token was given. */
  telegram: Telegram | null;
  hooks: JanitorHooks;
  /**
   * Tells every admin a text (the health check's changes, the analytics' bypass alerts); null when there is nobody to
   * tell.
   */
  notifyAdmins: ((text: string) => Promise<void>) | null;
}

/** The schedulers, ready to start. Made by {@link createJanitor}. */
export class Janitor {
  readonly engine: Engine<SeedJob>;
  /** The Bot API client, when a bot or token was given. */
  readonly telegram: Telegram | null;
  readonly config: Config;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  private readonly ownsStore: boolean;
  private readonly wakers: Waker[] = [];
  /** The message deleter's wake-ups, told of each deletion this process schedules. */
  private deletionWaker: Waker | null = null;

  constructor(parts: JanitorParts) {
    const { config, store, clock, logger, telegram, hooks } = parts;
    this.config = config;
    this.store = store;
    this.clock = clock;
    this.logger = logger;
    this.telegram = telegram;
    this.ownsStore = parts.ownsStore;
    const owner = newOwnerId();
    const jobs = buildJobs(config, store, telegram ? { telegram, owner, ...hooks } : null, parts.notifyAdmins);
    for (const job of jobs) markOwnCalls(job);
    this.engine = new Engine({
      store,
      clock,
      logger,
      owner,
      jobs,
      timezone: config.timezone,
      leaseMs: config.jobLeaseS * 1000,
      shutdownTimeoutMs: config.shutdownTimeoutS * 1000,
      catchUpMissed: config.catchUpMissed,
      keepRunsDays: config.jobRunsKeepDays,
      ...(hooks.onRunFinished ? { onRunFinished: hooks.onRunFinished } : {}),
    });
    const stopTimeoutMs = config.shutdownTimeoutS * 1000;
    for (const seedJob of jobs) {
      const job: JobOf<JobName> = seedJob;
      const { wake } = job;
      if (!wake || job.schedule === 'off') continue;
      // A wake-up is reported like an engine run: the job's own success line, marked as a wake-up, and one hook.
      const onRun = (summary: JobSummaries[JobName]) => {
        const fields: object = { job: job.name, trigger: 'wake-up', ...summary };
        logger.info(fields, job.successLine(summary, formatIn(clock.now(), config.timezone)));
        // The summary is the one this job's run returned: `job.name` and `summary` belong together, which the
        // union type of a loop over every job cannot say.
        hooks.onWakeRun?.({ job: job.name, summary } as WakeReport);
      };
      const waker = jobWaker({ ...job, wake }, { clock, logger, stopTimeoutMs, onRun });
      this.wakers.push(waker);
      if (job.name === 'message-deleter') this.deletionWaker = waker;
    }
  }

  /** Starts every enabled scheduler, and the on-time deletion wake-ups when Telegram is configured. */
  async start(): Promise<void> {
    if (!this.telegram)
      this.logger.warn('Telegram jobs (message-deleter, broadcast-deleter) are off until BOT_TOKEN is set');
    await this.engine.start();
    for (const w of this.wakers) w.start();
  }

  /** Stops the schedulers (waiting for runs in flight) and closes the database if the janitor opened it. */
  async stop(): Promise<void> {
    // In parallel: each waits for its work in hand up to the shutdown time-out, together no longer than that.
    await Promise.all([...this.wakers.map((w) => w.stop()), this.engine.stop()]);
    if (this.ownsStore) await this.store.close();
  }

  /**
   * Runs one job now by its name, recorded as a manual run (a dry run records nothing); the result's summary is that
   * job's own type. A Telegram job without a bot or token is refused.
   */
  async run<J extends JobName>(job: J, opts: RunOptions = {}): Promise<RunResultOf<J>> {
    if (!isJobName(job)) throw new Error(`unknown job "${String(job)}"`);
    for (const def of this.engine.definitions) {
      // RunResult<JobSummaries[J], J> is RunResultOf<J>; TypeScript does not resolve the conditional for a generic J.
      if (isJob(def, job)) return (await this.engine.runNow<JobSummaries[J], J>(def, opts)) as RunResultOf<J>;
    }
    throw new Error(`${job} talks to Telegram: set BOT_TOKEN (or pass a bot)`);
  }

  /** The seed's `cleanup_expired_tokens()`. */
  cleanupExpiredTokens(opts?: RunOptions): Promise<RunResult> {
    return this.run('token-cleanup', opts);
  }

  /** The seed's `reset_token_counts()`. */
  resetTokenCounts(opts?: RunOptions): Promise<RunResult> {
    return this.run('token-count-reset', opts);
  }

  /** The seed's `delete_due_messages()` (needs Telegram). */
  deleteDueMessages(opts?: RunOptions): Promise<RunResult> {
    return this.run('message-deleter', opts);
  }

  /** The seed's `delete_expired_broadcasts()` (needs Telegram). */
  deleteExpiredBroadcasts(opts?: RunOptions): Promise<RunResult> {
    return this.run('broadcast-deleter', opts);
  }

  /**
   * Schedules messages for deletion: one row for all of them, deleted at `deleteAt` (or `afterMinutes` from now, or
   * the `DELETE_AFTER_MINUTES` default), followed by the "deleted" notice (with "Click Here" when `uniqueId` is set)
   * unless `notice` is false (default true). Returns the row id. Scheduling the same deletion twice keeps one row.
   */
  async scheduleDeletion(d: ScheduleDeletionInput): Promise<number> {
    if (!Number.isSafeInteger(d.chatId)) throw new TypeError('scheduleDeletion: chatId must be an integer');
    if (d.messageIds.length === 0 || !d.messageIds.every((m) => Number.isSafeInteger(m) && m > 0)) {
      throw new TypeError('scheduleDeletion: messageIds must be one or more positive integers');
    }
    const now = this.clock.now().getTime();
    const minutes = d.afterMinutes ?? this.config.deleteAfterMinutes;
    if (!d.deleteAt && !(minutes > 0)) throw new TypeError('scheduleDeletion: afterMinutes must be positive');
    const deleteAt = d.deleteAt ? d.deleteAt.getTime() : now + minutes * 60_000;
    if (!Number.isFinite(deleteAt)) throw new TypeError('scheduleDeletion: deleteAt is not a valid date');
    const id = await insertDeletion(this.store, {
      userId: d.userId ?? d.chatId,
      chatId: d.chatId,
      messageIds: d.messageIds,
      deleteAt,
      uniqueId: d.uniqueId ?? null,
      createdAt: now,
      notice: d.notice !== false,
    });
    // Its wake-up is set now, not at the next look for other processes' rows.
    this.deletionWaker?.kick();
    return id;
  }
}

/**
 * Marks every Bot API call of the job's runs (scheduled, woken or manual) as the janitor's own: an
 * auto-delete transformer on the bot's Api then never schedules the deleter's notices or the admins' alerts.
 */
function markOwnCalls(job: Pick<AnyJob, 'run'>): void {
  // The wrapper returns what the job's own run returns: its summary type is unchanged.
  const run = job.run.bind(job);
  job.run = (ctx: RunContext) => asOwnCalls(() => run(ctx));
}

/** Whether `def` is the definition of job `name` (the registry builds each name with its own summary type). */
function isJob<J extends JobName>(def: AnyJob, name: J): def is JobOf<J> {
  return def.name === name;
}

/**
 * Validates the options, then opens (and migrates) the database and builds the schedulers.
 * @throws ConfigError naming a bad option (`config.timezone`, `databaseUrl`, …) before anything is opened.
 */
export async function createJanitor(opts: JanitorOptions = {}): Promise<Janitor> {
  // The environment's schema, so an option takes what its variable takes; token cleanup follows the hours given
  // unless a schedule for it is given too. Checked first: a bad option opens no database and creates no file.
  const config = configFromOptions(opts.config, opts.databaseUrl);
  const logger = opts.logger ?? createLogger({ level: config.logLevel, format: 'json', secrets: secretsOf(config) });
  const store = opts.store ?? (await openStore(config.databaseUrl));
  // Real time, not `opts.clock`: the migration waits out other processes' locks and schema changes.
  if (opts.migrate !== false) await migrateToLatest(store);
  const clock = opts.clock ?? systemClock;
  const tgOpts = {
    clock,
    rate: config.telegramRate,
    paidRate: config.broadcastPaidRate,
    retries: config.telegramRetries,
    ...(opts.hooks?.onTelegramCall ? { onCall: opts.hooks.onTelegramCall } : {}),
  };
  // A Bot has its Api as `api`, whatever its flavour; an Api has none.
  const api = opts.bot && 'api' in opts.bot ? opts.bot.api : opts.bot;
  const telegram = api
    ? instrument(api, tgOpts)
    : config.botToken
      ? createTelegram({
          token: config.botToken,
          apiRoot: config.botApiRoot,
          timeoutSeconds: config.telegramTimeoutS,
          ...tgOpts,
        })
      : null;
  const hooks = opts.hooks ?? {};
  const notifyAdmins = adminNotifier(config, telegram, logger, tgOpts);
  return new Janitor({ config, store, clock, logger, ownsStore: !opts.store, telegram, hooks, notifyAdmins });
}

/**
 * Tells every admin in ADMIN_IDS a text, through the admin bot when there is one (its own client: Telegram's limits
 * are per bot), else the user bot; null when there is nobody to tell or no bot to tell it with. A message an admin
 * cannot get is logged; the others still get theirs.
 */
function adminNotifier(
  config: Config,
  telegram: Telegram | null,
  logger: Logger,
  tgOpts: Pick<TelegramOptions, 'clock' | 'rate' | 'retries'>,
): ((text: string) => Promise<void>) | null {
  const api = config.adminBotToken
    ? createTelegram({
        token: config.adminBotToken,
        apiRoot: config.botApiRoot,
        timeoutSeconds: config.telegramTimeoutS,
        ...tgOpts,
      }).api
    : telegram?.api;
  if (!api || config.adminIds.length === 0) return null;
  return async (text) => {
    for (const admin of config.adminIds) {
      await api
        .sendMessage(admin, text)
        .catch((e: unknown) => logger.warn({ admin, err: (e as Error).message }, `could not tell admin ${admin}`));
    }
  };
}
