/**
 * The names of what import, export and backups move — the original bot's collections and the tables — with no
 * dependencies, so the CLI's usage texts load nothing else.
 */
import type { Database } from '../store/schema.ts';

/** The collections that can be imported and exported (any order works: none refers to another). */
export const COLLECTIONS = [
  'users',
  'tokens',
  'token_generator_count',
  'pending_deletions',
  'broadcasts',
  'settings',
] as const;
/** One of {@link COLLECTIONS}. */
export type Collection = (typeof COLLECTIONS)[number];

/** True when `name` is one of {@link COLLECTIONS}. */
export function isCollection(name: string): name is Collection {
  return (COLLECTIONS as readonly string[]).includes(name);
}

/** The tables a backup holds: all but run history and locks (`job_runs`, `job_locks`), which a restore starts empty. */
export type TableName = Exclude<keyof Database, 'job_runs' | 'job_locks'>;

/**
 * Each table's key columns (together unique): the order rows are written in. Typed over every table, so a table
 * added to the schema is a compile error here until a backup knows it.
 */
export const TABLE_KEYS: Record<TableName, readonly string[]> = {
  users: ['user_id'],
  tokens: ['token'],
  token_generator_count: ['user_id', 'date'],
  pending_deletions: ['id'],
  broadcasts: ['id'],
  broadcast_messages: ['broadcast_id', 'chat_id'],
  settings: ['key'],
  files: ['unique_id'],
  token_stats: ['day'],
  deletion_stats: ['hour'],
  job_faults: ['job'],
  known_chats: ['chat_id'],
  day_counters: ['day'],
  user_activity: ['day', 'user_id'],
  daily_stats: ['day'],
  health_state: ['id'],
  deletion_lateness: ['day', 'le_ms'],
  analytics: ['day'],
};

/** Every table of a backup, in the order a restore writes them (a broadcast before its recipients). */
export const BACKUP_TABLES = Object.keys(TABLE_KEYS) as TableName[];

/** True when `name` is a table a backup holds. */
export const isTableName = (name: string): name is TableName => Object.hasOwn(TABLE_KEYS, name);

/**
 * The tables that export and import move row by row (as stored), beside the original bot's collections: share links,
 * the chart and day counters, the health verdict, … (recipients go with their broadcast).
 */
export const TABLE_COLLECTIONS: TableName[] = BACKUP_TABLES.filter(
  (t) => !(COLLECTIONS as readonly string[]).includes(t) && t !== 'broadcast_messages',
);

/** True when `name` is one of {@link TABLE_COLLECTIONS}. */
export const isTableCollection = (name: string): name is TableName => (TABLE_COLLECTIONS as string[]).includes(name);
