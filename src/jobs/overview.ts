/** What the CLI's `jobs`, the status page and /healthz show about each job: schedule, next run, last runs. */
import { formatIn } from '../clock.ts';
import { JOB_NAMES, type Config } from '../config.ts';
import type { Store } from '../store/db.ts';
import { recentRuns } from '../store/job-runs.ts';
import type { JobRun } from '../store/schema.ts';
import { describeSchedule, nextFire } from '../scheduler/schedule.ts';
import type { SeedSummary } from './registry.ts';

/** A run as shown to people and in JSON. */
export interface RunView {
  id: number;
  status: string;
  manual: boolean;
  scheduled_for: string | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  /** What the job returned (its own summary type), the reason of a skipped tick, or null. */
  summary: StoredSummary | null;
  error: string | null;
}

/** What `job_runs.summary` holds: the summary a job's run returned, or why a tick was skipped. */
export type StoredSummary = SeedSummary | { reason: string };

/** One job's overview. */
export interface JobView {
  name: string;
  /** Cron expression or `off`. */
  schedule: string;
  schedule_words: string;
  /** Next fire time, ISO-8601 UTC, or null when off. */
  next_run: string | null;
  /** Next fire time as wall time in TIMEZONE. */
  next_run_local: string | null;
  last_run: RunView | null;
  recent_runs: RunView[];
}

/**
 * A run summary as `key=value` pairs (`deleted=3 rows=2`), nested values as compact JSON, each value cut to
 * `maxValue` characters (default: whole). The CLI, the admin's /run and the status page all show runs this way.
 */
export function formatSummary(summary: object | null | undefined, maxValue = Infinity): string {
  if (!summary) return '';
  return Object.entries(summary)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => {
      // Objects as JSON; the rest (numbers, strings, booleans) as their own text.
      const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
      return `${k}=${text.length > maxValue ? `${text.slice(0, maxValue - 1)}…` : text}`;
    })
    .join(' ');
}

/** A `job_runs` row for display. */
export function runView(r: JobRun): RunView {
  return {
    id: Number(r.id),
    status: r.status,
    manual: r.scheduled_for === null,
    scheduled_for: r.scheduled_for === null ? null : new Date(r.scheduled_for).toISOString(),
    started_at: new Date(r.started_at).toISOString(),
    finished_at: r.finished_at === null ? null : new Date(r.finished_at).toISOString(),
    duration_ms: r.finished_at === null ? null : r.finished_at - r.started_at,
    // Written by the engine from the run's own summary (`finishRun`), so it reads back as that type.
    summary: r.summary ? (JSON.parse(r.summary) as StoredSummary) : null,
    error: r.error,
  };
}

/** Every seed job with its schedule, next run after `now` and recent runs. */
export async function listJobs(config: Config, store: Store, now: Date, recent = 5): Promise<JobView[]> {
  const out: JobView[] = [];
  for (const name of JOB_NAMES) {
    const schedule = config.schedules[name];
    const next = schedule === 'off' ? null : nextFire(schedule, config.timezone, now);
    const runs = (await recentRuns(store.db, name, recent)).map(runView);
    out.push({
      name,
      schedule,
      schedule_words: describeSchedule(schedule),
      next_run: next?.toISOString() ?? null,
      next_run_local: next ? formatIn(next, config.timezone) : null,
      last_run: runs[0] ?? null,
      recent_runs: runs,
    });
  }
  return out;
}
