/**
 * Table types for Kysely. Tables carry the seed's collection names and the original bot's field names.
 * Instants are UTC epoch milliseconds (`bigint` on PostgreSQL, `INTEGER` on SQLite) so both dialects compare
 * and index them the same way; booleans are 0/1.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

export interface UsersTable {
  user_id: number;
  username: string | null;
  first_name: string | null;
  joined_at: number;
  is_banned: number;
  user_access_count: number;
  /** Set when Telegram said the user blocked the bot (or is gone); null otherwise. */
  blocked_at: number | null;
}

/** Status of a verification token. */
export type TokenStatus = 'not_used' | 'verified' | 'bypassed';
export const TOKEN_STATUSES: readonly TokenStatus[] = ['not_used', 'verified', 'bypassed'];

export interface TokensTable {
  token: string;
  unique_id: string;
  created_by: number;
  status: TokenStatus;
  created_at: number;
  expires_at: number;
  /** The file the user asked for when the token was made (delivered after verification). */
  file_unique_id: string | null;
  /** 1 when the shortener failed and the user got the direct link: the referer check does not apply. */
  direct_link: Generated<number>;
}

export interface TokenGeneratorCountTable {
  user_id: number;
  /** Calendar day in TIMEZONE, `YYYY-MM-DD`. */
  date: string;
  token_generated: number;
}

export interface PendingDeletionsTable {
  id: Generated<number>;
  /** The original bot's `_id`, when the row was imported. */
  source_id: string | null;
  /** `_id:<source_id>` or a hash of the content: what makes a second import of the same document a no-op. */
  dedupe_key: string;
  user_id: number;
  chat_id: number;
  /** JSON array of message ids. */
  message_ids: string;
  delete_at: number;
  /** What the "Click Here" button fetches again. */
  unique_id: string | null;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  /** 1 once the messages are deleted and only the notice is left (a retry never repeats the delete). */
  messages_deleted: number;
  claimed_by: string | null;
  claim_expires_at: number | null;
  /** 1 when the "deleted" notice follows the deletion (the default), 0 when the deletion is silent. */
  notice: Generated<number>;
}

/** Life of a broadcast: being sent, sent (waiting for delete_at), deleting, or deleted (row about to go). */
export type BroadcastStatus = 'sending' | 'sent' | 'deleting';

export interface BroadcastsTable {
  id: Generated<number>;
  source_id: string | null;
  dedupe_key: string;
  message_id: number | null;
  text: string | null;
  caption: string | null;
  file_id: string | null;
  duration_hours: number | null;
  channel_message_id: number | null;
  created_at: number;
  delete_at: number;
  status: string;
  /** Chat the broadcast is copied from (admin chat or storage channel). */
  from_chat_id: number | null;
  /** Sending progress: the last user id reached, so a restart resumes after it. */
  send_cursor: number | null;
  sent_count: number;
  failed_count: number;
  claimed_by: string | null;
  claim_expires_at: number | null;
  progress_chat_id: number | null;
  progress_message_id: number | null;
}

export interface BroadcastMessagesTable {
  broadcast_id: number;
  chat_id: number;
  message_id: number;
}

export interface SettingsTable {
  key: string;
  /** JSON-encoded value. */
  value: string;
}

/** Status of a job run. */
export type RunStatus = 'running' | 'ok' | 'error' | 'skipped' | 'abandoned';

export interface JobRunsTable {
  id: Generated<number>;
  job: string;
  /** The cron tick this run is for; null for a manual run. */
  scheduled_for: number | null;
  started_at: number;
  finished_at: number | null;
  status: RunStatus;
  /** JSON summary (counts). */
  summary: string | null;
  error: string | null;
  owner: string;
  lease_expires_at: number | null;
}

/** One row per job: who runs it now. Taking it is one conditional update, so no two runs overlap. */
export interface JobLocksTable {
  job: string;
  owner: string | null;
  run_id: number | null;
  lease_expires_at: number | null;
}

export interface FilesTable {
  unique_id: string;
  channel_id: number;
  /** JSON array of message ids in the storage channel. */
  message_ids: string;
  created_by: number;
  created_at: number;
}

export interface TokenStatsTable {
  /** Day the tokens were created, in TIMEZONE. */
  day: string;
  created: number;
  verified: number;
  bypassed: number;
}

export interface DeletionStatsTable {
  /** Start of the hour, epoch ms. */
  hour: number;
  messages: number;
}

/** A job stopped by a setup fault (rejected token, a storm of "chat not found"): it rests until `retry_at`. */
export interface JobFaultsTable {
  /** A job name, or `broadcast-sender`. */
  job: string;
  /** What to check, as the run's error said it. */
  message: string;
  /** Setup faults in a row (the back-off doubles with each). */
  count: number;
  since: number;
  /** Scheduled runs and wake-ups wait until then; a manual run tries at once. */
  retry_at: number;
}

/** Chats that answered a call lately (at most {@link KNOWN_CHATS_KEPT}), to probe the setup with. */
export interface KnownChatsTable {
  chat_id: number;
  seen_at: number;
}

/** Per local day: counts of what other tables forget (see `daily-stats.ts`). */
export interface DayCountersTable {
  day: string;
  files_delivered: number;
  deletions_done: number;
  deletions_on_time: number;
  deletions_late: number;
  deletions_failed: number;
  broadcasts_sent: number;
  broadcasts_deleted: number;
  recipients_reached: number;
  /** Users the broadcasts whose sending ended were meant for: reached, failed, or not reached before a cut. */
  broadcast_audience: number;
}

/** A user who sent the bot anything on a local day. */
export interface UserActivityTable {
  day: string;
  user_id: number;
}

/** One local day's figures, written by the stats job: the users and tokens at the day's end, and its counters. */
export interface DailyStatsTable extends Omit<DayCountersTable, 'day'> {
  day: string;
  users_total: number;
  users_new: number;
  users_active: number;
  users_blocked: number;
  tokens_created: number;
  tokens_verified: number;
  tokens_bypassed: number;
  computed_at: number;
}

/** The health check's last verdict (one row, id 1). */
export interface HealthStateTable {
  id: number;
  /** 1 healthy, 0 not. */
  healthy: number;
  /** The failed checks, comma-separated. */
  failing: string;
  changed_at: number;
  /** When admins were last told "unhealthy" (a new "unhealthy" within 30 minutes of it is held back). */
  unhealthy_told_at: number | null;
}

/** Deletions done on a local day, per lateness bucket (see `store/analytics.ts` for the bounds). */
export interface DeletionLatenessTable {
  day: string;
  /** The bucket's upper bound in ms (inclusive); -1 for the last bucket (beyond an hour), which has none. */
  le_ms: number;
  count: number;
}

/** One local day's analytics, written by the analytics job; rates are fractions 0–1, null without a denominator. */
export interface AnalyticsTable {
  day: string;
  verification_rate: number | null;
  bypass_rate: number | null;
  /** Bypassed / created over the 7 days ending with this one. */
  bypass_rate_7d: number | null;
  on_time_share: number | null;
  lateness_p50_s: number | null;
  lateness_p99_s: number | null;
  deliveries_per_active_user: number | null;
  broadcast_reach: number | null;
  computed_at: number;
  /** When admins were told this day's bypass rate was high (set once, by one conditional update); null before. */
  bypass_alert_at: number | null;
}

export interface Database {
  analytics: AnalyticsTable;
  deletion_lateness: DeletionLatenessTable;
  health_state: HealthStateTable;
  day_counters: DayCountersTable;
  user_activity: UserActivityTable;
  daily_stats: DailyStatsTable;
  files: FilesTable;
  token_stats: TokenStatsTable;
  deletion_stats: DeletionStatsTable;
  users: UsersTable;
  tokens: TokensTable;
  token_generator_count: TokenGeneratorCountTable;
  pending_deletions: PendingDeletionsTable;
  broadcasts: BroadcastsTable;
  broadcast_messages: BroadcastMessagesTable;
  settings: SettingsTable;
  job_runs: JobRunsTable;
  job_locks: JobLocksTable;
  job_faults: JobFaultsTable;
  known_chats: KnownChatsTable;
}

export type User = Selectable<UsersTable>;
export type Token = Selectable<TokensTable>;
export type TokenCount = Selectable<TokenGeneratorCountTable>;
export type PendingDeletion = Selectable<PendingDeletionsTable>;
export type NewPendingDeletion = Insertable<PendingDeletionsTable>;
export type Broadcast = Selectable<BroadcastsTable>;
export type FileRow = Selectable<FilesTable>;
export type JobRun = Selectable<JobRunsTable>;
