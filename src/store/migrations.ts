/** Schema migrations (Kysely's migrator), applied at start and by `tg-janitor migrate`. */
import {
  Migrator,
  sql,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
  type MigrationResultSet,
} from 'kysely';
import type { Store } from './db.ts';
import type { Database } from './schema.ts';
import { backoff } from '../backoff.ts';
import { systemClock, type Clock } from '../clock.ts';

// A migration is written against the schema as it stood at its step, not today's `Database` type (Kysely's own advice).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

/**
 * The day counters as 0006 created them. Frozen here, not read from `DAY_COUNTER_NAMES`: a counter added later comes
 * with its own migration (0008's `broadcast_audience`), and 0006 must create on a new database what it always did.
 */
const COUNTERS_0006 = [
  'files_delivered',
  'deletions_done',
  'deletions_on_time',
  'deletions_late',
  'deletions_failed',
  'broadcasts_sent',
  'broadcasts_deleted',
  'recipients_reached',
] as const;
/** The figures of a `daily_stats` row as 0006 created them (see {@link COUNTERS_0006}). */
const DAILY_0006 = [
  'users_total',
  'users_new',
  'users_active',
  'users_blocked',
  'tokens_created',
  'tokens_verified',
  'tokens_bypassed',
  ...COUNTERS_0006,
] as const;

function migrations(dialect: Store['dialect']): Record<string, Migration> {
  // The only difference between the dialects in the schema: how an auto-incrementing id is spelled.
  const serial = <TB extends string>(t: CreateTableBuilder<TB>) =>
    dialect === 'postgres'
      ? t.addColumn('id', 'bigserial', (c) => c.primaryKey())
      : t.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
  return {
    '0001_initial': {
      async up(db: AnyDb) {
        await db.schema
          .createTable('users')
          .addColumn('user_id', 'bigint', (c) => c.primaryKey())
          .addColumn('username', 'text')
          .addColumn('first_name', 'text')
          .addColumn('joined_at', 'bigint', (c) => c.notNull())
          .addColumn('is_banned', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('user_access_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('blocked_at', 'bigint')
          .execute();

        await db.schema
          .createTable('tokens')
          .addColumn('token', 'text', (c) => c.primaryKey())
          .addColumn('unique_id', 'text', (c) => c.notNull())
          .addColumn('created_by', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('not_used', 'verified', 'bypassed')`))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('file_unique_id', 'text')
          .execute();
        // Token cleanup: status IN (...) AND expires_at < now.
        await db.schema
          .createIndex('tokens_status_expires_at')
          .on('tokens')
          .columns(['status', 'expires_at'])
          .execute();
        await db.schema.createIndex('tokens_unique_id').on('tokens').column('unique_id').execute();
        await db.schema.createIndex('tokens_created_by').on('tokens').column('created_by').execute();

        await db.schema
          .createTable('token_generator_count')
          .addColumn('user_id', 'bigint', (c) => c.notNull())
          .addColumn('date', 'text', (c) => c.notNull())
          .addColumn('token_generated', 'integer', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('token_generator_count_pk', ['user_id', 'date'])
          .execute();
        await db.schema.createIndex('token_generator_count_date').on('token_generator_count').column('date').execute();

        await serial(db.schema.createTable('pending_deletions'))
          .addColumn('source_id', 'text')
          .addColumn('dedupe_key', 'text', (c) => c.notNull().unique())
          .addColumn('user_id', 'bigint', (c) => c.notNull())
          .addColumn('chat_id', 'bigint', (c) => c.notNull())
          .addColumn('message_ids', 'text', (c) => c.notNull())
          .addColumn('delete_at', 'bigint', (c) => c.notNull())
          .addColumn('unique_id', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
          .addColumn('last_error', 'text')
          .addColumn('messages_deleted', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('claimed_by', 'text')
          .addColumn('claim_expires_at', 'bigint')
          .execute();
        await db.schema
          .createIndex('pending_deletions_delete_at')
          .on('pending_deletions')
          .column('delete_at')
          .execute();
        await db.schema
          .createIndex('pending_deletions_next_attempt_at')
          .on('pending_deletions')
          .column('next_attempt_at')
          .execute();

        await serial(db.schema.createTable('broadcasts'))
          .addColumn('source_id', 'text')
          .addColumn('dedupe_key', 'text', (c) => c.notNull().unique())
          .addColumn('message_id', 'bigint')
          .addColumn('text', 'text')
          .addColumn('caption', 'text')
          .addColumn('file_id', 'text')
          .addColumn('duration_hours', 'double precision')
          .addColumn('channel_message_id', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('delete_at', 'bigint', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('from_chat_id', 'bigint')
          .addColumn('send_cursor', 'bigint')
          .addColumn('sent_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('failed_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('claimed_by', 'text')
          .addColumn('claim_expires_at', 'bigint')
          .execute();
        await db.schema.createIndex('broadcasts_delete_at').on('broadcasts').column('delete_at').execute();

        await db.schema
          .createTable('broadcast_messages')
          .addColumn('broadcast_id', 'bigint', (c) => c.notNull().references('broadcasts.id').onDelete('cascade'))
          .addColumn('chat_id', 'bigint', (c) => c.notNull())
          .addColumn('message_id', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('broadcast_messages_pk', ['broadcast_id', 'chat_id'])
          .execute();

        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();

        await serial(db.schema.createTable('job_runs'))
          .addColumn('job', 'text', (c) => c.notNull())
          .addColumn('scheduled_for', 'bigint')
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('finished_at', 'bigint')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('summary', 'text')
          .addColumn('error', 'text')
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('lease_expires_at', 'bigint')
          .execute();
        // Once per tick: a second process inserting the same (job, tick) loses. Manual runs have no tick (NULLs differ).
        await db.schema
          .createIndex('job_runs_tick')
          .on('job_runs')
          .columns(['job', 'scheduled_for'])
          .unique()
          .execute();
        await db.schema.createIndex('job_runs_job_started').on('job_runs').columns(['job', 'started_at']).execute();
        await db.schema.createIndex('job_runs_status').on('job_runs').column('status').execute();

        await db.schema
          .createTable('job_locks')
          .addColumn('job', 'text', (c) => c.primaryKey())
          .addColumn('owner', 'text')
          .addColumn('run_id', 'bigint')
          .addColumn('lease_expires_at', 'bigint')
          .execute();
      },
    },
    '0002_bots_and_stats': {
      async up(db: AnyDb) {
        // Files shared by link: a unique id → message ids in the storage channel.
        await db.schema
          .createTable('files')
          .addColumn('unique_id', 'text', (c) => c.primaryKey())
          .addColumn('channel_id', 'bigint', (c) => c.notNull())
          .addColumn('message_ids', 'text', (c) => c.notNull())
          .addColumn('created_by', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        // Tokens by the day they were created (TIMEZONE) and how they ended, so deleting tokens loses no history.
        await db.schema
          .createTable('token_stats')
          .addColumn('day', 'text', (c) => c.primaryKey())
          .addColumn('created', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('verified', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('bypassed', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // Messages deleted per hour (bucket start, epoch ms) for the status page.
        await db.schema
          .createTable('deletion_stats')
          .addColumn('hour', 'bigint', (c) => c.primaryKey())
          .addColumn('messages', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // Where the admin sees a broadcast's progress (one message, edited as it goes).
        await db.schema.alterTable('broadcasts').addColumn('progress_chat_id', 'bigint').execute();
        await db.schema.alterTable('broadcasts').addColumn('progress_message_id', 'bigint').execute();
        await db.schema.createIndex('broadcasts_status').on('broadcasts').column('status').execute();
      },
    },
    '0003_job_runs_last_success': {
      async up(db: AnyDb) {
        // The last success of a job (health, status page) without scanning its history.
        await db.schema
          .createIndex('job_runs_job_status_finished')
          .on('job_runs')
          .columns(['job', 'status', 'finished_at'])
          .execute();
      },
    },
    '0004_tokens_direct_link': {
      async up(db: AnyDb) {
        // 1 when the user got the direct verify link because the shortener failed: no shortener referer to expect.
        await db.schema
          .alterTable('tokens')
          .addColumn('direct_link', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0005_job_faults': {
      async up(db: AnyDb) {
        // A job (or the broadcast sender) stopped by a setup fault backs off, across processes and restarts.
        await db.schema
          .createTable('job_faults')
          .addColumn('job', 'text', (c) => c.primaryKey())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull())
          .addColumn('since', 'bigint', (c) => c.notNull())
          .addColumn('retry_at', 'bigint', (c) => c.notNull())
          .execute();
        // A few chats that answered lately: asked when "chat not found" comes with no success after it, they tell
        // the chat's fault (they still answer) from the setup's (they are "not found" too).
        await db.schema
          .createTable('known_chats')
          .addColumn('chat_id', 'bigint', (c) => c.primaryKey())
          .addColumn('seen_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0006_daily_stats': {
      async up(db: AnyDb) {
        // Per local day (TIMEZONE), what the other tables forget: deliveries, deletions and how late they were,
        // broadcasts. One upsert per event or per batch, read by the stats job.
        let counters = db.schema.createTable('day_counters').addColumn('day', 'text', (c) => c.primaryKey());
        for (const name of COUNTERS_0006)
          counters = counters.addColumn(name, 'integer', (c) => c.notNull().defaultTo(0));
        await counters.execute();
        // Who sent the bot anything, one row per user and day.
        await db.schema
          .createTable('user_activity')
          .addColumn('day', 'text', (c) => c.notNull())
          .addColumn('user_id', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_activity_pk', ['day', 'user_id'])
          .execute();
        // One row per local day, written (and rewritten) by the stats job.
        let daily = db.schema.createTable('daily_stats').addColumn('day', 'text', (c) => c.primaryKey());
        for (const name of DAILY_0006) daily = daily.addColumn(name, 'integer', (c) => c.notNull().defaultTo(0));
        await daily.addColumn('computed_at', 'bigint', (c) => c.notNull()).execute();
      },
    },
    '0007_health_state': {
      async up(db: AnyDb) {
        // The health check's last verdict, one row: runs from any process (or the CLI) and restarts agree on what
        // changed, so admins hear of a change once.
        await db.schema
          .createTable('health_state')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('healthy', 'integer', (c) => c.notNull())
          .addColumn('failing', 'text', (c) => c.notNull())
          .addColumn('changed_at', 'bigint', (c) => c.notNull())
          .addColumn('unhealthy_told_at', 'bigint')
          .execute();
      },
    },
    '0008_analytics': {
      async up(db: AnyDb) {
        // Who the broadcasts that ended were meant for, per day: reach = reached / audience.
        for (const table of ['day_counters', 'daily_stats'])
          await db.schema
            .alterTable(table)
            .addColumn('broadcast_audience', 'integer', (c) => c.notNull().defaultTo(0))
            .execute();
        // Deletions per day and lateness bucket, one upsert per batch: the day's percentiles without the rows.
        await db.schema
          .createTable('deletion_lateness')
          .addColumn('day', 'text', (c) => c.notNull())
          .addColumn('le_ms', 'bigint', (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('deletion_lateness_pk', ['day', 'le_ms'])
          .execute();
        // One row per local day, written by the analytics job; bypass_alert_at is set once (a conditional update),
        // so of the runs that see a day's bypass rate high, across instances and restarts, one tells the admins.
        let analytics = db.schema.createTable('analytics').addColumn('day', 'text', (c) => c.primaryKey());
        for (const name of [
          'verification_rate',
          'bypass_rate',
          'bypass_rate_7d',
          'on_time_share',
          'lateness_p50_s',
          'lateness_p99_s',
          'deliveries_per_active_user',
          'broadcast_reach',
        ])
          analytics = analytics.addColumn(name, 'double precision');
        await analytics
          .addColumn('computed_at', 'bigint', (c) => c.notNull())
          .addColumn('bypass_alert_at', 'bigint')
          .execute();
      },
    },
    '0009_deletion_notice': {
      async up(db: AnyDb) {
        // Whether the "deleted" notice follows a row's deletion: rows before this step and the user bot's keep it
        // (1); the auto-delete plugin writes 0 unless the bot asked for one.
        await db.schema
          .alterTable('pending_deletions')
          .addColumn('notice', 'integer', (c) => c.notNull().defaultTo(1))
          .execute();
      },
    },
    '0010_work_notify': {
      async up(db: AnyDb) {
        // The waker sleeps until the first lease end of claimed rows too (a holder that died leaves them then).
        await db.schema
          .createIndex('pending_deletions_claim_expires_at')
          .on('pending_deletions')
          .column('claim_expires_at')
          .execute();
        // PostgreSQL only: every statement that adds or moves work tells the schema's channel, so wakers in any process
        // learn of it without asking (SQLite's wakers watch PRAGMA data_version instead). Statement-level: one NOTIFY
        // per statement, however many rows; PostgreSQL folds identical ones in a transaction into one.
        if (dialect !== 'postgres') return;
        await sql`create or replace function tgj_notify_work() returns trigger language plpgsql as $$
          begin
            perform pg_notify(left('tgj_work_' || TG_TABLE_SCHEMA, 63), TG_TABLE_NAME);
            return null;
          end $$`.execute(db);
        await sql`create trigger pending_deletions_work after insert or update of next_attempt_at, claim_expires_at
          on pending_deletions for each statement execute function tgj_notify_work()`.execute(db);
        await sql`create trigger broadcasts_work after insert or update of delete_at, status, claim_expires_at
          on broadcasts for each statement execute function tgj_notify_work()`.execute(db);
      },
    },
  };
}

/** The name of the newest migration this version knows: the schema version a backup records. */
export function latestMigration(): string {
  return Object.keys(migrations('sqlite')).sort().at(-1)!;
}

/** The newest migration applied to `db` (null before any): the schema version of its data. */
export async function appliedMigration(db: Kysely<Database>): Promise<string | null> {
  const r = await sql<{ name: string }>`select max(name) as name from kysely_migration`.execute(db).catch(() => null);
  return r?.rows[0]?.name ?? null;
}

/**
 * Applies every migration not yet applied. Safe to call from several processes at once: a lost race for the
 * database's lock is retried after a back-off on `clock` (the system clock: other processes run in real time).
 */
export async function migrateToLatest(store: Store, clock: Clock = systemClock): Promise<MigrationResultSet> {
  const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations(store.dialect)) };
  // Kysely looks for its own tables across every schema unless told which one: with `?schema=` the migration table
  // must live in that schema, or a second instance in another schema of the same database would never migrate.
  const migrationTableSchema =
    store.dialect === 'postgres'
      ? (await sql<{ s: string }>`select current_schema() as s`.execute(store.db)).rows[0]?.s
      : undefined;
  const migrator = new Migrator({ db: store.db, provider, ...(migrationTableSchema ? { migrationTableSchema } : {}) });
  // Two processes starting on one SQLite file race for its write lock; the loser retries and finds the work done.
  for (let attempt = 1; ; attempt++) {
    const result = await migrator.migrateToLatest();
    if (!result.error) return result;
    const error: unknown = result.error; // Kysely's type: what a migration threw, not always an Error
    const message = String((error as Error)?.message ?? error);
    const busy = store.dialect === 'sqlite' && /SQLITE_BUSY|database is locked|already exists/i.test(message);
    // Kysely looks for its migration table across every schema (pg_get_serial_sequence on each table): another
    // schema dropped at that moment fails the lookup with "does not exist". Asked again, it is gone from the list.
    const raced = store.dialect === 'postgres' && /does not exist/i.test(message);
    if (!(busy || raced) || attempt >= 10) {
      // Kysely types the error `unknown`; anything not an Error is wrapped in one.
      throw error instanceof Error ? error : new Error(String(error));
    }
    await clock.sleep(backoff(attempt, { base: 50, cap: 1000 }));
  }
}
