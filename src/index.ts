/**
 * tg-janitor's library API: the background schedulers of a token-gated Telegram file bot, for a grammY bot author to
 * embed. A {@link Janitor} is made by {@link createJanitor} only; everything else here is a name or a type it uses.
 *
 * ```ts
 * import { createJanitor } from 'tg-janitor';
 * const janitor = await createJanitor({ databaseUrl: 'sqlite:./data/bot.db', bot });
 * await janitor.start();
 * ```
 */
export { createJanitor } from './janitor.ts';
export type { Janitor, JanitorOptions, JanitorHooks, RunOptions, ScheduleDeletionInput } from './janitor.ts';
export { ConfigError, type Config } from './config.ts';
export { JOB_NAMES, type JobName } from './job-names.ts';
export { FakeClock, type Clock, type Timer, type TimerOptions } from './clock.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export type { Logger } from './log.ts';
export type { RunResult, Trigger } from './scheduler/job.ts';
export type { JobSummaries, RunResultOf, SeedRunResult, WakeReport } from './jobs/registry.ts';
export type { TokenCleanupSummary } from './jobs/token-cleanup.ts';
export type { MessageDeleterSummary } from './jobs/message-deleter.ts';
export type { BroadcastDeleterSummary } from './jobs/broadcast-deleter.ts';
export type { TokenCountResetSummary } from './jobs/token-count-reset.ts';
export type { StatsSummary } from './jobs/stats.ts';
export type { HealthCheckSummary } from './jobs/health-check.ts';
export type { BackupSummary } from './jobs/backup.ts';
export type { AnalyticsSummary } from './jobs/analytics.ts';
export type { Broadcast } from './store/schema.ts';
export {
  autoDelete,
  AutoDeleteError,
  AUTO_DELETE_METHODS,
  MAX_DELAY_S,
  parseDelay,
  type AutoDeletePlugin,
  type AutoDeleteOptions,
  type AutoDeleteOption,
  type AutoDeleteOther,
  type AutoDeleteFlavor,
  type AutoDeleteApiFlavor,
  type AutoDeleteMethod,
  type DeleteAfterOptions,
  type Delay,
} from './plugin/auto-delete.ts';
