/** What the status page, `tg-janitor status`, /healthz and the admin's /status show: one snapshot of the service. */
import { userGrowth } from './stats.ts';
import { recentAnalytics, type AnalyticsDay } from './analytics.ts';
import { dayIn, lastDays, type Clock } from '../clock.ts';
import { JOB_NAMES, type Config } from '../config.ts';
import type { Store } from '../store/db.ts';
import { activeBroadcasts } from '../store/broadcasts.ts';
import { deletionStats } from '../store/deletions.ts';
import { listFaults } from '../store/faults.ts';
import { hasLiveRun, lastRunWithStatus } from '../store/job-runs.ts';
import { deletedPerHour, tokensPerDay } from '../store/stats.ts';
import { staleAfterMs } from '../scheduler/schedule.ts';
import { listJobs, type JobView } from './overview.ts';

/** A broadcast as the status page shows it. */
export interface BroadcastView {
  id: number;
  /** `sending`, `sent` (waiting for delete_at) or `deleting`. */
  status: string;
  text: string | null;
  created_at: string;
  delete_at: string;
  sent_count: number;
  failed_count: number;
  /** Recipient messages still to delete. */
  recipients_left: number;
}

/** The health verdict behind /healthz. */
export interface Health {
  ok: boolean;
  /** What is wrong, in words (empty when ok); may carry a raw error text, so only trusted clients see it. */
  problems: string[];
  /** The names of the checks that failed (`database`, `engine`, a job such as `message-deleter`), for anyone. */
  failing: string[];
}

/** Everything the status views show, at one instant. */
export interface StatusSnapshot {
  /** ISO-8601 UTC. */
  generated_at: string;
  timezone: string;
  /** When this service process started (ISO), or null for a CLI snapshot. */
  service_started_at: string | null;
  database: string;
  /** Whether the Telegram jobs run (a bot token is set). */
  telegram: boolean;
  jobs: JobView[];
  deletions: { total: number; overdue: number; due_next_hour: number; next_due_at: string | null };
  broadcasts: BroadcastView[];
  /** 48 hourly buckets, oldest first: `hour` is the bucket's start (ISO UTC). */
  deleted_per_hour: { hour: string; messages: number }[];
  /** 14 days, oldest first, by the day tokens were created in TIMEZONE. */
  tokens_per_day: { day: string; verified: number; bypassed: number; not_used: number }[];
  /** 30 days, oldest first: registered users at each day's end (today: so far) and how many joined that day. */
  users_per_day: { day: string; total: number; new: number }[];
  /** 14 days, newest first (as `stats --json`): today's analytics so far, earlier days' `analytics` rows. */
  analytics: AnalyticsDay[];
  health: Health;
}

/** What {@link collectStatus} reads from. */
export interface StatusSource {
  config: Config;
  store: Store;
  clock: Clock;
  /** When the service started; null for a CLI snapshot (no engine in this process). */
  startedAt: Date | null;
  /** Whether the engine is running (service only). */
  engineRunning?: boolean;
  /** Whether the Telegram jobs run here. */
  telegram: boolean;
}

const HOUR = 3600_000;

/** Reads every fact the status views show, and decides health. */
export async function collectStatus(src: StatusSource): Promise<StatusSnapshot> {
  const { config, store } = src;
  const now = src.clock.now();
  const nowMs = now.getTime();
  const jobs = await listJobs(config, store, now, 10);
  const d = await deletionStats(store, nowMs, HOUR);
  const active = await activeBroadcasts(store);
  const perHour = await deletedPerHour(store, nowMs, 48);
  const tokens = await tokensPerDay(store, lastDays(dayIn(now, config.timezone), 14));
  const users = await userGrowth(store, config.timezone, now, 30);
  const analytics = await recentAnalytics(store, config.timezone, now, 14);
  const snapshot: StatusSnapshot = {
    generated_at: now.toISOString(),
    timezone: config.timezone,
    service_started_at: src.startedAt?.toISOString() ?? null,
    database: store.describe,
    telegram: src.telegram,
    jobs,
    deletions: {
      total: d.total,
      overdue: d.overdue,
      due_next_hour: d.dueSoon,
      next_due_at: d.nextDueAt === null ? null : new Date(d.nextDueAt).toISOString(),
    },
    broadcasts: active.map((b) => ({
      id: Number(b.id),
      status: b.status,
      text: b.text ?? b.caption,
      created_at: new Date(b.created_at).toISOString(),
      delete_at: new Date(b.delete_at).toISOString(),
      sent_count: Number(b.sent_count),
      failed_count: Number(b.failed_count),
      recipients_left: b.recipients_left,
    })),
    deleted_per_hour: perHour.map((h) => ({ hour: new Date(h.hour).toISOString(), messages: h.messages })),
    tokens_per_day: tokens,
    users_per_day: users,
    analytics,
    health: { ok: true, problems: [], failing: [] },
  };
  snapshot.health = await judgeHealth(src, jobs, nowMs);
  return snapshot;
}

/** Only the health verdict, for /healthz: one indexed read per job, not the whole snapshot. */
export async function checkHealth(src: StatusSource): Promise<Health> {
  const jobs = JOB_NAMES.map((name) => ({ name, schedule: src.config.schedules[name] }));
  return judgeHealth(src, jobs, src.clock.now().getTime());
}

/**
 * Healthy when the engine runs and every enabled job is alive: its last success (or the service's start, whichever
 * is later) is younger than twice the largest gap between its fire times over the next 7 days, or a scheduled run of
 * it is still `running` with a lease that has not expired (busy, not broken).
 */
async function judgeHealth(
  src: StatusSource,
  jobs: Pick<JobView, 'name' | 'schedule'>[],
  nowMs: number,
): Promise<Health> {
  const problems: string[] = [];
  const failing: string[] = [];
  if (src.startedAt && src.engineRunning === false) {
    problems.push('the scheduler engine is not running');
    failing.push('engine');
  }
  for (const j of jobs) {
    if (j.schedule === 'off') continue;
    if (!src.telegram && TELEGRAM_JOBS.includes(j.name)) continue;
    const limit = staleAfterMs(j.schedule, src.config.timezone, new Date(nowMs));
    if (limit === null) continue;
    const success = await lastRunWithStatus(src.store.db, j.name, 'ok');
    const since = Math.max(success?.finished_at ?? 0, src.startedAt?.getTime() ?? 0);
    if (since === 0) continue; // a CLI snapshot of a database that never ran the job: nothing to judge yet
    // A run still renewing its lease is working (a long backlog), not stuck; one left by a dead process has expired.
    if (nowMs - since > limit && !(await hasLiveRun(src.store.db, j.name, nowMs))) {
      const [age, expected] = [Math.round((nowMs - since) / 1000), Math.round(limit / 1000)];
      problems.push(`${j.name}: no successful run for ${age} s (expected within ${expected} s)`);
      failing.push(j.name);
    }
  }
  // A setup fault (a rejected token, "chat not found" from every chat) is broken however recent the last success.
  const enabled = new Map(jobs.map((j) => [j.name, j.schedule !== 'off']));
  for (const f of await listFaults(src.store)) {
    if (enabled.get(f.job) === false || !src.telegram) continue;
    const next = new Date(Number(f.retry_at)).toISOString();
    problems.push(`${f.job}: setup fault (${f.count} in a row, next try ${next}): ${f.message}`);
    if (!failing.includes(f.job)) failing.push(f.job);
  }
  return { ok: problems.length === 0, problems, failing };
}

const TELEGRAM_JOBS = ['message-deleter', 'broadcast-deleter'];
