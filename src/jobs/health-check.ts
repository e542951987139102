/**
 * Health check (the seed's "Health Check Scheduler"): asks Telegram (`getMe`, its latency) and the database (a round
 * trip; the file's size on SQLite), checks each enabled job's freshness (as /healthz does), overdue deletions and
 * broadcasts past their `delete_at` (more than 5 minutes). An unhealthy run is recorded `error` naming each failed
 * check. The verdict is kept in the database; when it changes, every admin is told once — a return to healthy
 * always, a new "unhealthy" within 30 minutes of the last one held back (flapping).
 */
import { statSync } from 'node:fs';
import { sql } from 'kysely';
import { formatIn } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Store } from '../store/db.ts';
import { getHealthState, replaceHealthState, type HealthState } from '../store/health-state.ts';
import type { Telegram } from '../telegram/client.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';
import { checkHealth } from './status.ts';

/** Deletions and broadcasts this long past their `delete_at` are overdue. */
export const OVERDUE_MS = 5 * 60_000;
/** A new "unhealthy" this soon after the last one told is held back. */
export const FLAP_HOLD_MS = 30 * 60_000;

/** Counts of a health-check run. */
export interface HealthCheckSummary {
  healthy: boolean;
  /** Every check made, true when it passed: `database`, `telegram`, `job:<name>`, `deletions`, `broadcasts`. */
  checks: Record<string, boolean>;
  /** The failed checks, each with what was found. */
  failed: string[];
  database_latency_ms: number;
  /** The SQLite file's size (SQLite only). */
  database_size_bytes?: number;
  /** getMe's latency (when Telegram is configured and answered). */
  telegram_latency_ms?: number;
  overdue_deletions: number;
  overdue_broadcasts: number;
  /** What admins were told by this run: a change to `unhealthy` or back to `healthy`; null when nothing. */
  told: 'unhealthy' | 'healthy' | null;
  /** A change to unhealthy held back (flapping). */
  held_back?: boolean;
}

/** What the health check needs. */
export interface HealthCheckDeps {
  store: Store;
  config: Config;
  /** The Bot API client, when Telegram is configured. */
  telegram: Telegram | null;
  /** Tells every admin `text` (through the admin bot when there is one); null when there is nobody to tell. */
  notify: ((text: string) => Promise<void>) | null;
}

/** What a verdict means for the recorded state and the admins. Pure. */
export function healthChange(
  prev: HealthState | undefined,
  /** The names of the failed checks. */
  failed: string[],
  nowMs: number,
): { next: HealthState | null; tell: 'unhealthy' | 'healthy' | null; heldBack: boolean } {
  const healthy = failed.length === 0;
  const wasHealthy = prev ? prev.healthy === 1 : true;
  // A first run that finds all healthy is no change; one that finds problems is.
  if (prev && healthy === wasHealthy) return { next: null, tell: null, heldBack: false };
  if (!prev && healthy) return { next: stateOf(true, [], nowMs, null), tell: null, heldBack: false };
  if (healthy)
    return { next: stateOf(true, [], nowMs, prev?.unhealthy_told_at ?? null), tell: 'healthy', heldBack: false };
  const lastTold = prev?.unhealthy_told_at ?? null;
  const heldBack = lastTold !== null && nowMs - lastTold < FLAP_HOLD_MS;
  return {
    next: stateOf(false, failed, nowMs, heldBack ? lastTold : nowMs),
    tell: heldBack ? null : 'unhealthy',
    heldBack,
  };
}

const stateOf = (healthy: boolean, failed: string[], at: number, told: number | null): HealthState => ({
  healthy: healthy ? 1 : 0,
  failing: failed.join(','),
  changed_at: at,
  unhealthy_told_at: told,
});

/** Runs every check at the run's clock, records the verdict when it changed and tells the admins. */
export async function checkServiceHealth(
  deps: HealthCheckDeps,
  ctx: Pick<RunContext, 'now' | 'wallClock' | 'dryRun' | 'logger'>,
): Promise<HealthCheckSummary> {
  const { store, config, telegram } = deps;
  const wall = ctx.wallClock;
  const checks: Record<string, boolean> = {};
  const failed: string[] = [];
  const check = (name: string, ok: boolean, why: string) => {
    checks[name] = ok;
    if (!ok) failed.push(`${name}: ${why}`);
  };
  const failedNames = () => Object.keys(checks).filter((k) => !checks[k]);
  const t0 = wall.now().getTime();
  await sql`select 1`.execute(store.db);
  const databaseLatency = wall.now().getTime() - t0;
  check('database', true, '');
  const file = config.databaseUrl.startsWith('sqlite:') ? config.databaseUrl.slice('sqlite:'.length) : null;
  const size = file ? statSync(file, { throwIfNoEntry: false })?.size : undefined;
  let telegramLatency: number | undefined;
  if (telegram) {
    const t1 = wall.now().getTime();
    try {
      await telegram.api.getMe();
      telegramLatency = wall.now().getTime() - t1;
      check('telegram', true, '');
    } catch (e) {
      check('telegram', false, `getMe failed: ${(e as Error).message}`);
    }
  }
  const health = await checkHealth({ config, store, clock: wall, startedAt: null, telegram: Boolean(telegram) });
  for (const [name, schedule] of Object.entries(config.schedules)) {
    if (schedule === 'off' || (!telegram && (name === 'message-deleter' || name === 'broadcast-deleter'))) continue;
    // Not itself: its unhealthy runs are errors, and judging them would keep it unhealthy after the fault is gone.
    if (name === 'health-check') continue;
    const problem = health.problems.find((p) => p.startsWith(`${name}:`));
    check(`job:${name}`, !problem, problem?.slice(name.length + 2) ?? '');
  }
  const due = ctx.now.getTime() - OVERDUE_MS;
  const count = async (table: 'pending_deletions' | 'broadcasts') =>
    Number(
      (
        await store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('delete_at', '<', due)
          .executeTakeFirstOrThrow()
      ).n,
    );
  const overdueDeletions = await count('pending_deletions');
  const overdueBroadcasts = await count('broadcasts');
  check('deletions', overdueDeletions === 0, `${overdueDeletions} pending deletions more than 5 minutes overdue`);
  check('broadcasts', overdueBroadcasts === 0, `${overdueBroadcasts} broadcasts more than 5 minutes past delete_at`);

  const summary: HealthCheckSummary = {
    healthy: failed.length === 0,
    checks,
    failed,
    database_latency_ms: databaseLatency,
    ...(size !== undefined ? { database_size_bytes: size } : {}),
    ...(telegramLatency !== undefined ? { telegram_latency_ms: telegramLatency } : {}),
    overdue_deletions: overdueDeletions,
    overdue_broadcasts: overdueBroadcasts,
    told: null,
  };
  if (ctx.dryRun) return summary;
  const prev = await getHealthState(store);
  const nowMs = wall.now().getTime();
  const change = healthChange(prev, failedNames(), nowMs);
  // Recorded first, conditionally: of two runs that saw the same change, one tells.
  if (!change.next || !(await replaceHealthState(store, prev, change.next))) return summary;
  if (change.heldBack) summary.held_back = true;
  if (change.tell && deps.notify) {
    const at = `${formatIn(new Date(nowMs), config.timezone)} ${config.timezone}`;
    const text =
      change.tell === 'unhealthy'
        ? `⚠️ tg-janitor is unhealthy (${at}):\n${failed.map((f) => `• ${f}`).join('\n')}`
        : `✅ tg-janitor is healthy again (${at}).`;
    await deps.notify(text);
    summary.told = change.tell;
  }
  return summary;
}

/** The job definition for the engine (every 5 minutes by default). */
export function healthCheckJob(
  deps: HealthCheckDeps,
  schedule: string,
): JobDefinition<HealthCheckSummary, 'health-check'> {
  return {
    name: 'health-check',
    title: 'Health Check',
    label: 'health check',
    schedule,
    run: (ctx) => checkServiceHealth(deps, ctx),
    failure: (s) => (s.healthy ? null : `unhealthy: ${s.failed.join('; ')}`),
    successLine: (s, at) =>
      `✅ Health check completed at ${at} (healthy, database ${s.database_latency_ms} ms${s.telegram_latency_ms === undefined ? '' : `, Telegram ${s.telegram_latency_ms} ms`})`,
  };
}
