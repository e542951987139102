/**
 * /healthz tells busy from broken: a run that is still renewing its lease is alive, and a job's stale limit follows
 * the largest gap of its schedule, not the next one.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import { checkHealth } from '../src/jobs/status.ts';
import { staleAfterMs } from '../src/scheduler/schedule.ts';
import type { Store } from '../src/store/db.ts';
import type { RunStatus } from '../src/store/schema.ts';
import { BACKENDS, withTestDb } from './support/db.ts';

const H = 3600_000;
const at = (iso: string) => new Date(iso);

test('the stale limit is twice the largest gap over the next 7 days: 0 0,6 * * * waits 18 h between 06:00 and 00:00', () => {
  // Between 18:00 and 00:00 the next two fires are 00:00 and 06:00, 6 h apart; the wait in hand is 18 h.
  for (const iso of ['2026-11-29T20:00:00Z', '2026-11-29T03:00:00Z', '2026-11-29T06:00:00Z']) {
    assert.equal(staleAfterMs('0 0,6 * * *', 'UTC', at(iso)), 2 * 18 * H, iso);
  }
  // In a zone, the gaps are wall-clock gaps: 18 h in Asia/Kolkata too.
  assert.equal(staleAfterMs('0 0,6 * * *', 'Asia/Kolkata', at('2026-11-29T15:00:00Z')), 2 * 18 * H);
  // A weekly schedule: 7 days; an even one keeps twice its step.
  assert.equal(staleAfterMs('0 9 * * 1', 'UTC', at('2026-11-29T12:00:00Z')), 2 * 7 * 24 * H);
  assert.equal(staleAfterMs('* * * * *', 'UTC', at('2026-11-29T12:00:30Z')), 120_000);
});

test('a per-second schedule with a long pause: walked up to the cap, then probed hourly, the pause is found', () => {
  // Every second from 00:00 to 05:59:59, then nothing until midnight: far more fires than are walked one by one.
  assert.equal(staleAfterMs('* * 0-5 * * *', 'UTC', at('2026-11-29T01:00:00Z')), 2 * (18 * H + 1000));
  assert.equal(staleAfterMs('*/2 * * * * *', 'UTC', at('2026-11-29T01:00:00Z')), 4000);
});

/** A scheduled run of `job` as the engine records it. */
async function insertRun(
  store: Store,
  r: { job: string; tick: number; status: RunStatus; finishedAt?: number; leaseUntil?: number },
) {
  await store.db
    .insertInto('job_runs')
    .values({
      job: r.job,
      scheduled_for: r.tick,
      started_at: r.tick,
      status: r.status,
      owner: 'engine-1',
      summary: null,
      error: null,
      finished_at: r.finishedAt ?? null,
      lease_expires_at: r.leaseUntil ?? null,
    })
    .execute();
}

for (const backend of BACKENDS) {
  describe(`health on ${backend}`, () => {
    test('TOKEN_CLEANUP_HOURS=0,6 stays healthy from 18:00 to 00:00 and turns unhealthy after two missed runs', () =>
      withTestDb(backend, async (store) => {
        const config = loadConfig({
          TOKEN_CLEANUP_HOURS: '0,6',
          SCHEDULE_TOKEN_COUNT_RESET: 'off',
          // Only token cleanup is judged here.
          SCHEDULE_HEALTH_CHECK: 'off',
          SCHEDULE_ANALYTICS: 'off',
        });
        assert.equal(config.schedules['token-cleanup'], '0 0,6 * * *');
        const clock = new FakeClock('2026-11-29T20:00:00Z');
        const src = {
          config,
          store,
          clock,
          startedAt: at('2026-11-29T00:00:00Z'),
          engineRunning: true,
          telegram: false,
        };
        const six = Date.parse('2026-11-29T06:00:00Z');
        await insertRun(store, { job: 'token-cleanup', tick: six, status: 'ok', finishedAt: six + 1000 });
        assert.deepEqual(
          await checkHealth(src),
          { ok: true, problems: [], failing: [] },
          '14 h after the 06:00 run, waiting for 00:00',
        );
        clock.set('2026-11-29T23:59:59Z');
        assert.equal((await checkHealth(src)).ok, true);
        // 00:00 and 06:00 failed; 36 h after the last success it is stale.
        clock.set('2026-11-30T18:00:02Z');
        const h = await checkHealth(src);
        assert.equal(h.ok, false);
        assert.match(
          h.problems.join('\n'),
          /^token-cleanup: no successful run for 129601 s \(expected within 129600 s\)$/,
        );
        assert.deepEqual(h.failing, ['token-cleanup']);
      }));

    test('a message deleter working a long backlog is healthy while its run renews its lease; an expired lease is not', () =>
      withTestDb(backend, async (store) => {
        const config = loadConfig({
          SCHEDULE_TOKEN_CLEANUP: 'off',
          SCHEDULE_TOKEN_COUNT_RESET: 'off',
          SCHEDULE_BROADCAST_DELETER: 'off',
          SCHEDULE_MESSAGE_DELETER: '* * * * *',
          SCHEDULE_HEALTH_CHECK: 'off',
          SCHEDULE_ANALYTICS: 'off',
        });
        const now = Date.parse('2026-11-29T12:10:30Z');
        const clock = new FakeClock(now);
        const src = {
          config,
          store,
          clock,
          startedAt: at('2026-11-29T11:00:00Z'),
          engineRunning: true,
          telegram: true,
        };
        const t0 = Date.parse('2026-11-29T12:00:00Z');
        await insertRun(store, { job: 'message-deleter', tick: t0 - 60_000, status: 'ok', finishedAt: t0 - 59_000 });
        // The 12:00 run has been deleting for ten minutes; later ticks were skipped; its lease was renewed.
        await insertRun(store, { job: 'message-deleter', tick: t0, status: 'running', leaseUntil: now + 40_000 });
        assert.deepEqual(await checkHealth(src), { ok: true, problems: [], failing: [] }, 'busy, not broken');
        // Its process died: the lease ran out and nobody renews it.
        clock.set(now + 41_000);
        const h = await checkHealth(src);
        assert.equal(h.ok, false);
        assert.match(h.problems.join('\n'), /^message-deleter: no successful run/);
        assert.deepEqual(h.failing, ['message-deleter']);
      }));
  });
}
