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
import { loadConfig, JOB_NAMES, type Config, type JobName } from './config.ts';
import { systemClock, type Clock } from './clock.ts';
import { createLogger, type Logger } from './log.ts';
import { openStore, type Store } from './store/db.ts';
import { migrateToLatest } from './store/migrations.ts';
import { Engine, runManual, type JobDefinition, type RunResult } from './scheduler/engine.ts';
import { tokenCleanupJob } from './jobs/token-cleanup.ts';
import { tokenCountResetJob } from './jobs/token-count-reset.ts';

/** Options for {@link createJanitor}. */
export interface JanitorOptions {
  /** `sqlite:<path>` or `postgres://…` (default: `config.databaseUrl`, i.e. `sqlite:./data/tg-janitor.db`). */
  databaseUrl?: string;
  /** An open store to use instead of `databaseUrl` (not closed by `stop()`). */
  store?: Store;
  /** Settings over the defaults of {@link loadConfig} (TIMEZONE, schedules, …). */
  config?: Partial<Config>;
  /** Where "now" comes from (default the system clock). */
  clock?: Clock;
  /** A pino logger (default JSON to stderr at `info`). */
  logger?: Logger;
  /** Apply migrations on create (default true). */
  migrate?: boolean;
}

/** Options of a one-off run. */
export interface RunOptions {
  /** Evaluate as if at this instant (default now). */
  now?: Date;
  /** Report what would change, change nothing, record nothing (default false). */
  dryRun?: boolean;
}

/** The schedulers, ready to start. */
export class Janitor {
  readonly engine: Engine;
  private readonly jobs: Map<string, JobDefinition>;

  constructor(
    readonly config: Config,
    readonly store: Store,
    readonly clock: Clock,
    readonly logger: Logger,
    private readonly ownsStore: boolean,
  ) {
    const defs = buildJobs(config, store);
    this.jobs = new Map(defs.map((d) => [d.name, d]));
    this.engine = new Engine({
      store,
      clock,
      logger,
      jobs: defs,
      timezone: config.timezone,
      leaseMs: config.jobLeaseS * 1000,
      shutdownTimeoutMs: config.shutdownTimeoutS * 1000,
      catchUpMissed: config.catchUpMissed,
    });
  }

  /** Starts every enabled scheduler. */
  async start(): Promise<void> {
    await this.engine.start();
  }

  /** Stops the schedulers (waiting for runs in flight) and closes the database if the janitor opened it. */
  async stop(): Promise<void> {
    await this.engine.stop();
    if (this.ownsStore) await this.store.close();
  }

  /** Runs one job now, recorded as a manual run (a dry run records nothing). */
  async run(job: JobName | string, opts: RunOptions = {}): Promise<RunResult> {
    const def = this.jobs.get(job);
    if (!def) throw new Error(`unknown job "${job}" (known: ${[...this.jobs.keys()].join(', ')})`);
    if (this.engine.isRunning) return this.engine.runNow(job, opts);
    return runManual(def, { store: this.store, clock: this.clock, logger: this.logger, timezone: this.config.timezone, leaseMs: this.config.jobLeaseS * 1000, ...opts });
  }

  /** The seed's `cleanup_expired_tokens()`. */
  cleanupExpiredTokens(opts?: RunOptions): Promise<RunResult> {
    return this.run('token-cleanup', opts);
  }

  /** The seed's `reset_token_counts()`. */
  resetTokenCounts(opts?: RunOptions): Promise<RunResult> {
    return this.run('token-count-reset', opts);
  }
}

/** The job definitions for a configuration, in the seed's order. */
export function buildJobs(config: Config, store: Store): JobDefinition[] {
  const defs: JobDefinition[] = [
    tokenCleanupJob(store, config.schedules['token-cleanup']),
    tokenCountResetJob(store, config.timezone, config.schedules['token-count-reset']),
  ];
  return defs.sort((a, b) => JOB_NAMES.indexOf(a.name as JobName) - JOB_NAMES.indexOf(b.name as JobName));
}

/** Opens (and migrates) the database and builds the schedulers. */
export async function createJanitor(opts: JanitorOptions = {}): Promise<Janitor> {
  const base = loadConfig({});
  const config: Config = { ...base, ...opts.config, schedules: { ...base.schedules, ...opts.config?.schedules } };
  if (opts.databaseUrl) config.databaseUrl = opts.databaseUrl;
  const logger = opts.logger ?? createLogger({ level: config.logLevel, format: 'json', secrets: [config.botToken] });
  const store = opts.store ?? (await openStore(config.databaseUrl));
  if (opts.migrate !== false) await migrateToLatest(store);
  return new Janitor(config, store, opts.clock ?? systemClock, logger, !opts.store);
}
