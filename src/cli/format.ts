/** Text output of the CLI: aligned tables, and `tg-janitor status` as the status page's facts for a terminal. */
import { formatIn } from '../clock.ts';
import type { StatusSnapshot } from '../jobs/status.ts';
import { formatSummary } from '../jobs/overview.ts';
import { formatRate, formatRatio, formatSeconds } from '../jobs/analytics.ts';

/** The snapshot as a few aligned lines. */
export function formatStatus(s: StatusSnapshot): string {
  const tz = s.timezone;
  const local = (iso: string | null) => (iso ? formatIn(new Date(iso), tz) : '-');
  const out: string[] = [];
  out.push(`tg-janitor status at ${local(s.generated_at)} ${tz} (${s.database})`);
  out.push(s.health.ok ? 'health: ok' : `health: PROBLEMS\n${s.health.problems.map((p) => `  - ${p}`).join('\n')}`);
  out.push('', 'jobs:');
  const rows = s.jobs.map((j) => {
    const last = j.last_run;
    const counts = formatSummary(last?.summary);
    return [
      j.name,
      j.schedule_words,
      j.next_run_local ?? 'off',
      last ? `${last.status} ${local(last.finished_at ?? last.started_at)}` : 'never',
      counts + (last?.error ? ` error: ${last.error}` : ''),
    ];
  });
  out.push(...table(['JOB', 'SCHEDULE', 'NEXT RUN', 'LAST RUN', 'LAST SUMMARY'], rows).map((l) => `  ${l}`));
  const d = s.deletions;
  out.push(
    '',
    `pending deletions: ${d.total} (${d.overdue} overdue, ${d.due_next_hour} due within an hour; next ${local(d.next_due_at)})`,
  );
  out.push(`broadcasts in progress: ${s.broadcasts.length ? '' : 'none'}`);
  for (const b of s.broadcasts)
    out.push(
      `  #${b.id} ${b.status}: ${b.sent_count} sent, ${b.failed_count} failed, ${b.recipients_left} to delete at ${local(b.delete_at)}`,
    );
  const deleted = s.deleted_per_hour.reduce((a, h) => a + h.messages, 0);
  const t = s.tokens_per_day.reduce((a, d) => ({ v: a.v + d.verified, b: a.b + d.bypassed, n: a.n + d.not_used }), {
    v: 0,
    b: 0,
    n: 0,
  });
  out.push(
    `messages deleted in 48 h: ${deleted}; tokens in 14 days: ${t.v} verified, ${t.b} bypassed, ${t.n} not used`,
  );
  const a = s.analytics[0];
  if (a)
    out.push(
      `analytics today: ${formatRate(a.verification_rate)} verified, ${formatRate(a.bypass_rate)} bypassed (7 days ` +
        `${formatRate(a.bypass_rate_7d)}), ${formatRate(a.on_time_share)} on time (p50 ${formatSeconds(a.lateness_p50_s)}, ` +
        `p99 ${formatSeconds(a.lateness_p99_s)}), ${formatRatio(a.deliveries_per_active_user)} files per active user, ` +
        `broadcast reach ${formatRate(a.broadcast_reach)}`,
    );
  return `${out.join('\n')}\n`;
}

/** Rows under a header, columns padded to their widest cell. */
export function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}
