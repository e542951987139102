/** Run-time settings the admin changes (`delete_after_minutes`, …), stored as JSON values by key. */
import { SETTING_RANGES, type Config } from '../config.ts';
import type { Store } from './db.ts';

/** The numeric settings: their ranges are `SETTING_RANGES`; while unset (or out of range) the config's value holds. */
export type NumberSettingKey = keyof typeof SETTING_RANGES;

/** Known setting keys. */
export type SettingKey = NumberSettingKey | 'deleted_notice_text';

const FALLBACK: Record<NumberSettingKey, (c: Config) => number> = {
  delete_after_minutes: (c) => c.deleteAfterMinutes,
  token_generation_limit: (c) => c.tokenGenerationLimit,
  media_access_count: (c) => c.mediaAccessCount,
};

/** True when `v` is a whole number in the setting's range. */
export function validSetting(key: NumberSettingKey, v: unknown): v is number {
  const r = SETTING_RANGES[key];
  return typeof v === 'number' && Number.isInteger(v) && v >= r.min && v <= r.max;
}

/** A numeric setting in force: the admin's value when set and valid, else the configuration's. */
export async function numberSetting(store: Store, config: Config, key: NumberSettingKey): Promise<number> {
  const v = await getSetting(store, key);
  return validSetting(key, v) ? v : FALLBACK[key](config);
}

/** Reads a setting; undefined when unset or unreadable. */
export async function getSetting<T = unknown>(store: Store, key: SettingKey): Promise<T | undefined> {
  const row = await store.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
  if (!row) return undefined;
  try {
    return JSON.parse(row.value) as T;
  } catch {
    // A value stored without JSON encoding counts as unset: the config's default applies (import checks values).
    return undefined;
  }
}

/** Writes a setting (insert or replace). */
export async function setSetting(store: Store, key: SettingKey, value: unknown): Promise<void> {
  const v = JSON.stringify(value);
  await store.db
    .insertInto('settings')
    .values({ key, value: v })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: v }))
    .execute();
}
