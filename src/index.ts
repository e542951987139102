/** tg-janitor's library API: the background schedulers of a token-gated Telegram file bot. */
export {
  createJanitor,
  Janitor,
  type JanitorOptions,
  type JanitorHooks,
  type RunOptions,
  type ScheduleDeletionInput,
} from './janitor.ts';
export { loadConfig, ConfigError, JOB_NAMES, type Config, type JobName } from './config.ts';
export { systemClock, FakeClock, offsetClock, dayIn, type Clock, type Timer, type TimerOptions } from './clock.ts';
export { backoff, type BackoffOptions } from './backoff.ts';
export { createLogger, type Logger } from './log.ts';
export { openStore, type Store, type Dialect } from './store/db.ts';
export { migrateToLatest } from './store/migrations.ts';
export { Engine, type EngineOptions } from './scheduler/engine.ts';
export { runManual } from './scheduler/run.ts';
export type { JobDefinition, RunContext, RunResult, Trigger, WakeOptions } from './scheduler/job.ts';
export {
  buildJobs,
  type JobSummaries,
  type SeedRunResult,
  type RunResultOf,
  type WakeReport,
} from './jobs/registry.ts';
export { nextFire, describeSchedule } from './scheduler/schedule.ts';
export {
  classifyCopyError,
  classifyError,
  classifyResponse,
  FatalTelegramError,
  type CopyFailure,
  type Outcome,
  type OutcomeKind,
} from './telegram/errors.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export { createTelegram, instrument, type Telegram, type TelegramOptions } from './telegram/client.ts';
export { cleanupExpiredTokens } from './jobs/token-cleanup.ts';
export { resetTokenCounts } from './jobs/token-count-reset.ts';
export { deleteDueMessages, type MessageDeleterSummary } from './jobs/message-deleter.ts';
export { deleteExpiredBroadcasts, type BroadcastDeleterSummary } from './jobs/broadcast-deleter.ts';
export { type TokenCleanupSummary } from './jobs/token-cleanup.ts';
export { type TokenCountResetSummary } from './jobs/token-count-reset.ts';
export { Waker, jobWaker, type WakerOptions } from './scheduler/waker.ts';
export { importCollection, exportCollection, COLLECTIONS, ImportError, type Collection } from './transfer/index.ts';
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
