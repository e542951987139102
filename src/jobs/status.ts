/** What the status page, `tg-janitor status`, /healthz and the admin's /status show: one snapshot of the service. */
import type { JobView } from './overview.ts';

/** A broadcast as the status page shows it. */
export interface BroadcastView {
  id: number;
  /** `sending`, `sent` (waiting for delete_at) or `deleting`. */
  status: string;
  text: string | null;
  created_at: string;
  delete_at: string;
  sent_count: number;
  failed_count: number;
  /** Recipient messages still to delete. */
  recipients_left: number;
}

/** The health verdict behind /healthz. */
export interface Health {
  ok: boolean;
  /** What is wrong, in words (empty when ok). */
  problems: string[];
}

/** Everything the status views show, at one instant. */
export interface StatusSnapshot {
  /** ISO-8601 UTC. */
  generated_at: string;
  timezone: string;
  /** When this service process started (ISO), or null for a CLI snapshot. */
  service_started_at: string | null;
  database: string;
  /** Whether the Telegram jobs run (a bot token is set). */
  telegram: boolean;
  jobs: JobView[];
  deletions: { total: number; overdue: number; due_next_hour: number; next_due_at: string | null };
  broadcasts: BroadcastView[];
  /** 48 hourly buckets, oldest first: `hour` is the bucket's start (ISO UTC). */
  deleted_per_hour: { hour: string; messages: number }[];
  /** 14 days, oldest first, by the day tokens were created in TIMEZONE. */
  tokens_per_day: { day: string; verified: number; bypassed: number; not_used: number }[];
  health: Health;
}
