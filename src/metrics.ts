/**
 * Prometheus metrics of the service (prom-client), fed by the {@link JanitorHooks} callbacks.
 *
 * Each {@link createMetrics} call has its own `Registry` (never prom-client's global one), so tests and embedders can
 * make as many as they like. The pending-deletion gauges are read at scrape time from a callback
 * ({@link Metrics.setPendingSource}); everything else is pushed by the hooks.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_NAMES } from './config.ts';
import type { JanitorHooks } from './janitor.ts';
import type { SeedRunResult, WakeReport } from './jobs/registry.ts';

/** Pending-deletion counts read at scrape time. */
export interface PendingCounts {
  total: number;
  overdue: number;
}

/** What {@link createMetrics} returns. */
export interface Metrics {
  /** This instance's own registry (default process metrics + the `tg_janitor_*` series). */
  readonly registry: Registry;
  /** Every {@link JanitorHooks} callback; pass to `createJanitor({ hooks })`. None of them throws. */
  readonly hooks: Required<Omit<JanitorHooks, 'onBroadcastCut'>>;
  /** The `Content-Type` to serve {@link Metrics.render}'s text with. */
  readonly contentType: string;
  /** The Prometheus text exposition of every series. */
  render(): Promise<string>;
  /**
   * Where `tg_janitor_pending_deletions` and `…_overdue` come from: called (once) per scrape. When it fails or is
   * unset, the gauges keep their last values (0 at first).
   */
  setPendingSource(fn: (() => Promise<PendingCounts>) | null): void;
}

/** Run-duration buckets, 1 ms … 10 min. */
export const RUN_DURATION_BUCKETS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];
/** Deletion-lateness buckets, 50 ms … 5 min. */
export const LATENESS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A new metrics set with its own registry, process metrics included. */
export function createMetrics(): Metrics {
  const register = new Registry();
  // The event-loop lag is sampled every second, not prom-client's 10 ms: its timer was most of an idle service's
  // wake-ups (ten a second at 100 ms). A stall still shows in full, since it delays the timer that is always pending;
  // only the percentiles rest on fewer samples.
  collectDefaultMetrics({ register, eventLoopMonitoringPrecision: 1000 });
  const registers = [register];

  const runs = new Counter({
    name: 'tg_janitor_job_runs_total',
    help: 'Job runs by job and final status (ok, error, skipped, abandoned).',
    labelNames: ['job', 'status'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'tg_janitor_job_run_duration_seconds',
    help: 'Duration of job runs that ran (ok or error), in seconds.',
    labelNames: ['job'] as const,
    buckets: RUN_DURATION_BUCKETS,
    registers,
  });
  const lastSuccess = new Gauge({
    name: 'tg_janitor_job_last_success_timestamp_seconds',
    help: 'Unix time of the end of the last successful run of each job.',
    labelNames: ['job'] as const,
    registers,
  });

  let pendingSource: (() => Promise<PendingCounts>) | null = null;
  let inflight: Promise<void> | null = null;
  // Both gauges are collected concurrently by one scrape; they share one call of the source.
  const refreshPending = (): Promise<void> => {
    const source = pendingSource;
    if (!source) return Promise.resolve();
    inflight ??= (async () => {
      try {
        const c = await source();
        if (finite(c.total)) pending.set(c.total);
        if (finite(c.overdue)) overdue.set(c.overdue);
      } catch {
        // Keep the last values: a database blip must not fail the whole scrape.
      } finally {
        inflight = null;
      }
    })();
    return inflight;
  };
  const pending = new Gauge({
    name: 'tg_janitor_pending_deletions',
    help: 'Rows in pending_deletions (read at scrape time).',
    registers,
    collect: refreshPending,
  });
  const overdue = new Gauge({
    name: 'tg_janitor_pending_deletions_overdue',
    help: 'Pending deletions whose delete_at has passed (read at scrape time).',
    registers,
    collect: refreshPending,
  });

  const lateness = new Histogram({
    name: 'tg_janitor_deletion_lateness_seconds',
    help: "Seconds between a deletion's delete_at and when its messages were deleted.",
    buckets: LATENESS_BUCKETS,
    registers,
  });
  const telegramCalls = new Counter({
    name: 'tg_janitor_telegram_calls_total',
    help: 'Bot API calls by method and outcome (done, gone, undeletable, unreachable, transient, fatal).',
    labelNames: ['method', 'outcome'] as const,
    registers,
  });
  const telegram429 = new Counter({
    name: 'tg_janitor_telegram_429_total',
    help: 'Bot API calls answered 429 Too Many Requests.',
    registers,
  });
  const broadcastLeft = new Gauge({
    name: 'tg_janitor_broadcast_recipients_remaining',
    help: 'Recipient messages still to delete, per broadcast being deleted.',
    labelNames: ['broadcast_id'] as const,
    registers,
  });
  const messagesDeleted = new Counter({
    name: 'tg_janitor_messages_deleted_total',
    help: 'Messages deleted by the message deleter (scheduled runs and on-time wake-ups).',
    registers,
  });

  const healthCheck = new Gauge({
    name: 'tg_janitor_health_check_ok',
    help: 'Each check of the last health-check run: 1 passed, 0 failed (database, telegram, job:<name>, deletions, broadcasts).',
    labelNames: ['check'] as const,
    registers,
  });

  // Known series start at 0, so rate() and absent() work before the first run.
  for (const job of JOB_NAMES) for (const status of ['ok', 'error'] as const) runs.inc({ job, status }, 0);

  const countDeleted = (n: number | undefined) => {
    if (n !== undefined && finite(n) && n > 0) messagesDeleted.inc(n);
  };

  const guard =
    <A extends unknown[]>(fn: (...a: A) => void) =>
    (...a: A): void => {
      try {
        fn(...a);
      } catch {
        // Hooks must never throw into the scheduler.
      }
    };

  const hooks: Required<Omit<JanitorHooks, 'onBroadcastCut'>> = {
    onRunFinished: guard((r: SeedRunResult) => {
      // A dry run (no run row) changed nothing and is not counted.
      if (r.runId === null) return;
      runs.inc({ job: r.job, status: r.status });
      if (r.status === 'ok' || r.status === 'error') {
        const s = (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000;
        if (finite(s) && s >= 0) duration.observe({ job: r.job }, s);
      }
      if (r.status === 'ok') {
        const t = r.finishedAt.getTime() / 1000;
        if (finite(t)) lastSuccess.set({ job: r.job }, t);
      }
      if (r.job === 'message-deleter') countDeleted(r.summary.messages_deleted);
      // An unhealthy run is recorded `error` with its summary: its checks count either way.
      if (r.job === 'health-check' && r.summary.checks)
        for (const [check, ok] of Object.entries(r.summary.checks)) healthCheck.set({ check }, ok ? 1 : 0);
    }),
    onTelegramCall: guard((method: string, outcome: string, errorCode?: number) => {
      telegramCalls.inc({ method, outcome });
      if (outcome === 'transient' && errorCode === 429) telegram429.inc();
    }),
    onDeletionLateness: guard((seconds: number) => {
      if (finite(seconds)) lateness.observe(Math.max(0, seconds));
    }),
    onWakeRun: guard((r: WakeReport) => {
      if (r.job === 'message-deleter') countDeleted(r.summary.messages_deleted);
      // An unhealthy run is recorded `error` with its summary: its checks count either way.
      if (r.job === 'health-check' && r.summary.checks)
        for (const [check, ok] of Object.entries(r.summary.checks)) healthCheck.set({ check }, ok ? 1 : 0);
    }),
    onBroadcastProgress: guard((broadcastId: number, left: number) => {
      const labels = { broadcast_id: String(broadcastId) };
      if (finite(left) && left > 0) broadcastLeft.set(labels, left);
      else broadcastLeft.remove(labels);
    }),
  };

  return {
    registry: register,
    hooks,
    contentType: register.contentType,
    render: () => register.metrics(),
    setPendingSource(fn) {
      pendingSource = fn;
    },
  };
}
