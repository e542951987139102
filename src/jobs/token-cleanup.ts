/**
 * Token cleanup (seed scheduler 1): deletes tokens that expired and were spent (`verified` or `bypassed`).
 * Unused tokens stay even when expired, for the user's convenience. Runs at TOKEN_CLEANUP_HOURS (00:00 and 12:00).
 */
import type { Store } from '../store/db.ts';
import { countExpiredSpentTokens, deleteExpiredSpentTokens } from '../store/tokens.ts';
import type { JobDefinition, RunContext } from '../scheduler/job.ts';

/** Counts of a token-cleanup run: `deleted`, or `would_delete` on a dry run. */
export interface TokenCleanupSummary {
  deleted?: number;
  would_delete?: number;
}

/** One token cleanup at `ctx.now`. */
export async function cleanupExpiredTokens(
  store: Store,
  ctx: Pick<RunContext, 'now' | 'dryRun'>,
): Promise<TokenCleanupSummary> {
  const now = ctx.now.getTime();
  if (ctx.dryRun) return { would_delete: await countExpiredSpentTokens(store.db, now) };
  return { deleted: await deleteExpiredSpentTokens(store.db, now) };
}

/** The job definition for the engine. */
export function tokenCleanupJob(store: Store, schedule: string): JobDefinition<TokenCleanupSummary, 'token-cleanup'> {
  return {
    name: 'token-cleanup',
    title: 'Token Cleanup',
    label: 'token cleanup',
    schedule,
    run: (ctx) => cleanupExpiredTokens(store, ctx),
    successLine: (s, at) =>
      s.would_delete !== undefined
        ? `🧹 Token cleanup would delete ${s.would_delete} tokens (dry run) at ${at}`
        : `✅ Token cleanup completed at ${at} (${s.deleted ?? 0} deleted)`,
  };
}
