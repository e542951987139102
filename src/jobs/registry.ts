/**
 * The seed's jobs by name: each job's summary type, and the definitions a configuration runs (the Telegram jobs
 * only with a client). What `run --json`, the status page, the admin's `/run` and the metrics read is typed here.
 */
import { JOB_NAMES, type Config, type JobName } from '../config.ts';
import type { Store } from '../store/db.ts';
import type { Telegram } from '../telegram/client.ts';
import type { Broadcast } from '../store/schema.ts';
import type { JobDefinition, RunResult } from '../scheduler/job.ts';
import { tokenCleanupJob, type TokenCleanupSummary } from './token-cleanup.ts';
import { tokenCountResetJob, type TokenCountResetSummary } from './token-count-reset.ts';
import { messageDeleterJob, type MessageDeleterSummary } from './message-deleter.ts';
import { broadcastDeleterJob, type BroadcastDeleterSummary } from './broadcast-deleter.ts';
import { statsJob, type StatsSummary } from './stats.ts';
import { healthCheckJob, type HealthCheckSummary } from './health-check.ts';
import { backupJob, type BackupSummary } from './backup.ts';
import { analyticsJob, type AnalyticsSummary } from './analytics.ts';

/** Each job's summary type, by job name. */
export interface JobSummaries {
  'token-cleanup': TokenCleanupSummary;
  'message-deleter': MessageDeleterSummary;
  'broadcast-deleter': BroadcastDeleterSummary;
  'token-count-reset': TokenCountResetSummary;
  stats: StatsSummary;
  'health-check': HealthCheckSummary;
  backup: BackupSummary;
  analytics: AnalyticsSummary;
}

/** The definition of job `J`. */
export type JobOf<J extends JobName> = JobDefinition<JobSummaries[J], J>;

/** Any of the seed's job definitions: a union, so `job.name` tells its summary type. */
export type SeedJob = { [J in JobName]: JobOf<J> }[JobName];

/** How a run of job `J` ended; for a union of names, a union of results (`r.job` narrows `r.summary`). */
export type RunResultOf<J extends JobName> = J extends JobName ? RunResult<JobSummaries[J], J> : never;

/** How a run of any seed job ended; `r.job` narrows `r.summary` to that job's type. */
export type SeedRunResult = RunResultOf<JobName>;

/** A summary of any seed job, as stored in `job_runs.summary` and shown on the status page. */
export type SeedSummary = JobSummaries[JobName];

/** A wake-up that worked something; `job` narrows `summary`. */
export type WakeReport = { [J in JobName]: { job: J; summary: JobSummaries[J] } }[JobName];

/** What the Telegram jobs need, and what they report to. */
export interface TelegramJobDeps {
  telegram: Telegram;
  /** This process's owner id (claims). */
  owner: string;
  /** Told each worked row's lateness in seconds (metrics). */
  onDeletionLateness?: (seconds: number) => void;
  /** Told the recipients left of a broadcast being deleted (metrics). */
  onBroadcastProgress?: (broadcastId: number, left: number) => void;
  /** Told when the deleter takes a broadcast whose deadline came while it was still being sent (tell the admin). */
  onBroadcastCut?: (b: Broadcast) => void;
}

/**
 * The job definitions for a configuration, in the seed's order; the Telegram jobs only with a client. `notify` tells
 * every admin a text (the health check's changes, the analytics' bypass alerts); null when there is nobody to tell.
 */
export function buildJobs(
  config: Config,
  store: Store,
  tg: TelegramJobDeps | null,
  notify: ((text: string) => Promise<void>) | null = null,
): SeedJob[] {
  const jobs: SeedJob[] = [
    tokenCleanupJob(store, config.schedules['token-cleanup']),
    tokenCountResetJob(store, config.timezone, config.schedules['token-count-reset']),
    statsJob(store, config.timezone, config.schedules.stats),
    healthCheckJob({ store, config, telegram: tg?.telegram ?? null, notify }, config.schedules['health-check']),
    backupJob(store, { dir: config.backupDir, keep: config.backupKeep }, config.schedules.backup),
    analyticsJob(
      { store, timezone: config.timezone, alertRate: config.bypassAlertRate, notify },
      config.schedules.analytics,
    ),
  ];
  if (tg) {
    const common = {
      store,
      telegram: tg.telegram,
      owner: tg.owner,
      leaseMs: config.claimLeaseS * 1000,
      timezone: config.timezone,
    };
    const deleter = { ...common, ...(tg.onDeletionLateness ? { onLateness: tg.onDeletionLateness } : {}) };
    const bdeps = {
      ...common,
      ...(tg.onBroadcastProgress ? { onProgress: tg.onBroadcastProgress } : {}),
      ...(tg.onBroadcastCut ? { onSendingCut: tg.onBroadcastCut } : {}),
    };
    jobs.push(
      messageDeleterJob(deleter, config.schedules['message-deleter']),
      broadcastDeleterJob(bdeps, config.schedules['broadcast-deleter']),
    );
  }
  return jobs.sort((a, b) => JOB_NAMES.indexOf(a.name) - JOB_NAMES.indexOf(b.name));
}
