/** The health check's last verdict, kept in the database so every process, the CLI and restarts agree on changes. */
import type { Store } from './db.ts';
import type { HealthStateTable } from './schema.ts';

/** The recorded verdict. */
export type HealthState = Omit<HealthStateTable, 'id'>;

/** The last verdict, or undefined before the first run. */
export async function getHealthState(store: Store): Promise<HealthState | undefined> {
  const r = await store.db.selectFrom('health_state').selectAll().where('id', '=', 1).executeTakeFirst();
  if (!r) return undefined;
  const told = r.unhealthy_told_at === null ? null : Number(r.unhealthy_told_at);
  return { healthy: Number(r.healthy), failing: r.failing, changed_at: Number(r.changed_at), unhealthy_told_at: told };
}

/**
 * Records `next` in place of `prev` (the verdict this run read) in one conditional statement; false when another
 * run recorded a verdict meanwhile (that run tells the admins, not this one).
 */
export async function replaceHealthState(
  store: Store,
  prev: HealthState | undefined,
  next: HealthState,
): Promise<boolean> {
  if (!prev) {
    const r = await store.db
      .insertInto('health_state')
      .values({ id: 1, ...next })
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }
  const r = await store.db
    .updateTable('health_state')
    .set(next)
    .where('id', '=', 1)
    .where('changed_at', '=', prev.changed_at)
    .where('healthy', '=', prev.healthy)
    .where('failing', '=', prev.failing)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
