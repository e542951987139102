/** Run-time settings the admin changes (`delete_after_minutes`, …), stored as JSON values by key. */
import type { Store } from './db.ts';

/** Known setting keys. */
export type SettingKey = 'delete_after_minutes' | 'deleted_notice_text' | 'token_generation_limit' | 'media_access_count';

/** Reads a setting; undefined when unset or unreadable. */
export async function getSetting<T = unknown>(store: Store, key: SettingKey | string): Promise<T | undefined> {
  const row = await store.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  if (!row) return undefined;
  try {
    return JSON.parse(row.value) as T;
  } catch {
    return undefined;
  }
}

/** Writes a setting (insert or replace). */
export async function setSetting(store: Store, key: SettingKey | string, value: unknown): Promise<void> {
  const v = JSON.stringify(value);
  await store.db.insertInto('settings').values({ key, value: v }).onConflict((oc) => oc.column('key').doUpdateSet({ value: v })).execute();
}
