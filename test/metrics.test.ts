import { test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import { createMetrics } from '../src/metrics.ts';
import type { SeedRunResult, WakeReport } from '../src/jobs/registry.ts';
import type { MessageDeleterSummary } from '../src/jobs/message-deleter.ts';
import type { BroadcastDeleterSummary } from '../src/jobs/broadcast-deleter.ts';

const T0 = new Date('2025-03-10T12:00:00.000Z');

const deleterSummary: MessageDeleterSummary = {
  rows: 0,
  messages_deleted: 0,
  gone: 0,
  undeletable: 0,
  unreachable: 0,
  notices_sent: 0,
  transient: 0,
  removed: 0,
  max_lateness_s: 0,
};
const broadcastSummary: BroadcastDeleterSummary = {
  broadcasts_done: 0,
  messages_deleted: 0,
  gone: 0,
  undeletable: 0,
  unreachable: 0,
  without_recipients: 0,
  unconfirmed: 0,
};

/** A result as the engine reports it; the summary holds only the counts a test looks at. */
function result(
  job: string,
  status: SeedRunResult['status'],
  durationMs: number,
  summary: Record<string, unknown> = {},
  runId: number | null = 1,
): SeedRunResult {
  // A partial summary stands for the job's whole one: metrics read only these counts.
  return {
    job,
    runId,
    status,
    scheduledFor: T0,
    startedAt: T0,
    finishedAt: new Date(T0.getTime() + durationMs),
    evaluatedAt: T0,
    summary,
  } as SeedRunResult;
}

/** The sample line's value for an exact series (name plus label string as prom-client prints it). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('job runs: counter by job and status, duration histogram, last success, messages deleted', async () => {
  const m = createMetrics();
  m.hooks.onRunFinished(result('token-cleanup', 'ok', 250, { deleted: 3 }));
  m.hooks.onRunFinished(result('token-cleanup', 'ok', 2500, { deleted: 0 }));
  m.hooks.onRunFinished(result('message-deleter', 'error', 40, { rows: 2, messages_deleted: 4 }));
  m.hooks.onRunFinished(result('message-deleter', 'ok', 900, { rows: 5, messages_deleted: 7 }));
  m.hooks.onRunFinished(result('message-deleter', 'skipped', 0, { reason: 'busy' }));
  m.hooks.onRunFinished(result('broadcast-deleter', 'abandoned', 0, {}));
  m.hooks.onRunFinished(result('broadcast-deleter', 'ok', 10, { messages_deleted: 100 })); // broadcasts: not counted
  m.hooks.onRunFinished(result('message-deleter', 'ok', 10, { messages_deleted: 50 }, null)); // dry run: ignored
  const text = await m.render();

  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="token-cleanup",status="ok"}'), 2);
  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="message-deleter",status="error"}'), 1);
  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="message-deleter",status="ok"}'), 1);
  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="message-deleter",status="skipped"}'), 1);
  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="broadcast-deleter",status="abandoned"}'), 1);
  // Known jobs start at 0.
  assert.equal(sample(text, 'tg_janitor_job_runs_total{job="token-count-reset",status="ok"}'), 0);
  assert.match(text, /# TYPE tg_janitor_job_runs_total counter/);

  assert.match(text, /# TYPE tg_janitor_job_run_duration_seconds histogram/);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_count{job="token-cleanup"}'), 2);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_sum{job="token-cleanup"}'), 2.75);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_bucket{le="0.001",job="token-cleanup"}'), 0);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_bucket{le="0.25",job="token-cleanup"}'), 1);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_bucket{le="600",job="token-cleanup"}'), 2);
  // Skipped and abandoned runs did not run: no duration.
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_count{job="message-deleter"}'), 2);
  assert.equal(sample(text, 'tg_janitor_job_run_duration_seconds_count{job="broadcast-deleter"}'), 1);

  assert.match(text, /# TYPE tg_janitor_job_last_success_timestamp_seconds gauge/);
  assert.equal(
    sample(text, 'tg_janitor_job_last_success_timestamp_seconds{job="token-cleanup"}'),
    (T0.getTime() + 2500) / 1000,
  );
  assert.equal(
    sample(text, 'tg_janitor_job_last_success_timestamp_seconds{job="message-deleter"}'),
    (T0.getTime() + 900) / 1000,
  );

  // From message-deleter runs (ok and error both report what they deleted).
  assert.equal(sample(text, 'tg_janitor_messages_deleted_total'), 11);
});

test('the waker feeds messages_deleted_total too', async () => {
  const m = createMetrics();
  m.hooks.onWakeRun({ job: 'message-deleter', summary: { ...deleterSummary, rows: 1, messages_deleted: 3 } });
  m.hooks.onWakeRun({ job: 'message-deleter', summary: deleterSummary });
  m.hooks.onWakeRun({
    job: 'broadcast-deleter',
    summary: { ...broadcastSummary, broadcasts_done: 1, messages_deleted: 40 },
  });
  m.hooks.onRunFinished(result('message-deleter', 'ok', 5, { messages_deleted: 2 }));
  assert.equal(sample(await m.render(), 'tg_janitor_messages_deleted_total'), 5);
});

test('telegram calls by method and outcome; 429s counted apart', async () => {
  const m = createMetrics();
  m.hooks.onTelegramCall('deleteMessages', 'done');
  m.hooks.onTelegramCall('deleteMessages', 'done');
  m.hooks.onTelegramCall('deleteMessages', 'transient', 429);
  m.hooks.onTelegramCall('deleteMessages', 'transient', 502);
  m.hooks.onTelegramCall('sendMessage', 'unreachable', 403);
  m.hooks.onTelegramCall('sendMessage', 'transient');
  const text = await m.render();
  assert.equal(sample(text, 'tg_janitor_telegram_calls_total{method="deleteMessages",outcome="done"}'), 2);
  assert.equal(sample(text, 'tg_janitor_telegram_calls_total{method="deleteMessages",outcome="transient"}'), 2);
  assert.equal(sample(text, 'tg_janitor_telegram_calls_total{method="sendMessage",outcome="unreachable"}'), 1);
  assert.equal(sample(text, 'tg_janitor_telegram_calls_total{method="sendMessage",outcome="transient"}'), 1);
  assert.equal(sample(text, 'tg_janitor_telegram_429_total'), 1);
});

test('deletion lateness histogram', async () => {
  const m = createMetrics();
  for (const s of [0.01, 0.3, 4, 400, -1]) m.hooks.onDeletionLateness(s);
  const text = await m.render();
  assert.match(text, /# TYPE tg_janitor_deletion_lateness_seconds histogram/);
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_count'), 5);
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_bucket{le="0.05"}'), 2); // 0.01 and the early one (as 0)
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_bucket{le="0.5"}'), 3);
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_bucket{le="5"}'), 4);
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_bucket{le="300"}'), 4);
  assert.equal(sample(text, 'tg_janitor_deletion_lateness_seconds_bucket{le="+Inf"}'), 5);
});

test('broadcast recipients remaining: set per broadcast, removed at 0', async () => {
  const m = createMetrics();
  m.hooks.onBroadcastProgress(7, 120);
  m.hooks.onBroadcastProgress(8, 5);
  m.hooks.onBroadcastProgress(7, 37);
  m.hooks.onBroadcastProgress(8, 0);
  const text = await m.render();
  assert.equal(sample(text, 'tg_janitor_broadcast_recipients_remaining{broadcast_id="7"}'), 37);
  assert.doesNotMatch(text, /broadcast_id="8"/);
});

test('pending deletions are read from the source at scrape time, once per scrape', async () => {
  const m = createMetrics();
  let text = await m.render();
  assert.equal(sample(text, 'tg_janitor_pending_deletions'), 0);
  assert.equal(sample(text, 'tg_janitor_pending_deletions_overdue'), 0);

  let calls = 0;
  let counts = { total: 17, overdue: 3 };
  m.setPendingSource(async () => (calls++, counts));
  text = await m.render();
  assert.equal(sample(text, 'tg_janitor_pending_deletions'), 17);
  assert.equal(sample(text, 'tg_janitor_pending_deletions_overdue'), 3);
  assert.equal(calls, 1);

  counts = { total: 4, overdue: 0 };
  text = await m.render();
  assert.equal(sample(text, 'tg_janitor_pending_deletions'), 4);
  assert.equal(sample(text, 'tg_janitor_pending_deletions_overdue'), 0);
  assert.equal(calls, 2);

  // A failing source keeps the last values and does not fail the scrape.
  m.setPendingSource(async () => {
    throw new Error('database is locked');
  });
  text = await m.render();
  assert.equal(sample(text, 'tg_janitor_pending_deletions'), 4);
});

test('hooks never throw, whatever they are fed', () => {
  const m = createMetrics();
  const bad = {
    job: 'x',
    runId: 1,
    status: 'ok',
    scheduledFor: null,
    startedAt: new Date(NaN),
    finishedAt: new Date(NaN),
    summary: null,
  } as unknown as SeedRunResult;
  assert.doesNotThrow(() => m.hooks.onRunFinished(bad));
  assert.doesNotThrow(() => m.hooks.onRunFinished(null as unknown as SeedRunResult));
  assert.doesNotThrow(() => m.hooks.onDeletionLateness(NaN));
  assert.doesNotThrow(() => m.hooks.onWakeRun(null as unknown as WakeReport));
  assert.doesNotThrow(() =>
    m.hooks.onWakeRun({ job: 'message-deleter', summary: { ...deleterSummary, messages_deleted: -5 } }),
  );
  assert.doesNotThrow(() => m.hooks.onBroadcastProgress(9, NaN));
  assert.doesNotThrow(() => m.hooks.onTelegramCall(undefined as unknown as string, 'done'));
});

test('process metrics, content type, and independent registries', async () => {
  const a = createMetrics();
  const b = createMetrics();
  assert.notEqual(a.registry, b.registry);
  assert.notEqual(a.registry, globalRegistry);
  assert.match(a.contentType, /^text\/plain; version=0\.0\.4/);
  a.hooks.onTelegramCall('deleteMessages', 'done');
  const ta = await a.render();
  const tb = await b.render();
  for (const t of [ta, tb]) {
    assert.match(t, /^process_cpu_user_seconds_total \d/m);
    assert.match(t, /^nodejs_heap_size_used_bytes \d/m);
  }
  assert.equal(sample(ta, 'tg_janitor_telegram_calls_total{method="deleteMessages",outcome="done"}'), 1);
  assert.equal(sample(tb, 'tg_janitor_telegram_calls_total{method="deleteMessages",outcome="done"}'), undefined);
  // Nothing of ours leaked into the global registry.
  assert.doesNotMatch(await globalRegistry.metrics(), /tg_janitor_/);
  // Every series exists in a fresh registry, by its exact name.
  for (const name of [
    'tg_janitor_job_runs_total',
    'tg_janitor_job_run_duration_seconds',
    'tg_janitor_job_last_success_timestamp_seconds',
    'tg_janitor_pending_deletions',
    'tg_janitor_pending_deletions_overdue',
    'tg_janitor_deletion_lateness_seconds',
    'tg_janitor_telegram_calls_total',
    'tg_janitor_telegram_429_total',
    'tg_janitor_broadcast_recipients_remaining',
    'tg_janitor_messages_deleted_total',
  ]) {
    assert.match(tb, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
});
