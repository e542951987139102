/**
 * Token count reset (seed scheduler 4): at midnight in TIMEZONE, deletes the per-user daily token counts of days
 * before today, so users may create tokens again.
 */
import { dayIn } from '../clock.ts';
import type { Store } from '../store/db.ts';
import { countCountsBefore, deleteCountsBefore } from '../store/tokens.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';

/** Counts of a token-count-reset run. `today` is the calendar day kept, in TIMEZONE. */
export interface TokenCountResetSummary {
  today: string;
  deleted?: number;
  would_delete?: number;
}

/** One reset at `ctx.now`: "today" is `ctx.now`'s calendar day in `timezone`. */
export async function resetTokenCounts(
  store: Store,
  timezone: string,
  ctx: Pick<RunContext, 'now' | 'dryRun'>,
): Promise<TokenCountResetSummary> {
  const today = dayIn(ctx.now, timezone);
  if (ctx.dryRun) return { today, would_delete: await countCountsBefore(store.db, today) };
  return { today, deleted: await deleteCountsBefore(store.db, today) };
}

/** The job definition for the engine. */
export function tokenCountResetJob(
  store: Store,
  timezone: string,
  schedule: string,
): JobDefinition<TokenCountResetSummary, 'token-count-reset'> {
  return {
    name: 'token-count-reset',
    title: 'Token Count Reset',
    label: 'token count reset',
    schedule,
    run: (ctx) => resetTokenCounts(store, timezone, ctx),
    successLine: (s, at) =>
      s.would_delete !== undefined
        ? `🔄 Token count reset would delete ${s.would_delete} counts before ${s.today} (dry run) at ${at}`
        : `✅ Token counts reset completed at ${at} (${s.deleted ?? 0} deleted, today is ${s.today})`,
  };
}
