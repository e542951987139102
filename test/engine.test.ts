import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Engine } from '../src/scheduler/engine.ts';
import { runManual } from '../src/scheduler/run.ts';
import type { JobDefinition, RunResult } from '../src/scheduler/job.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { until } from './support/wait.ts';

const logger = createLogger({ level: 'silent' });

/** A job that counts its runs and can be held open or made to throw. */
function probe(name: string, schedule: string, behaviour: { hold?: Promise<void>; throwOnce?: boolean } = {}) {
  const calls: Date[] = [];
  let thrown = false;
  const job: JobDefinition = {
    name,
    title: 'Probe',
    label: 'probe',
    schedule,
    async run(ctx) {
      calls.push(ctx.now);
      if (behaviour.throwOnce && !thrown) {
        thrown = true;
        throw new Error('boom');
      }
      if (behaviour.hold) await behaviour.hold;
      return { n: calls.length };
    },
    successLine: (_s, at) => `✅ probe at ${at}`,
  };
  return { job, calls };
}

async function runsOf(store: Store, job: string) {
  return store.db.selectFrom('job_runs').selectAll().where('job', '=', job).orderBy('id').execute();
}

/** A tick of `job` that another process (`owner`) started and left `running`, holding the job's lock until `leaseEnds`. */
async function leftRunning(store: Store, r: { job: string; owner: string; startedAt: number; leaseEnds: number }) {
  const run = await store.db
    .insertInto('job_runs')
    .values({
      job: r.job,
      scheduled_for: r.startedAt,
      started_at: r.startedAt,
      status: 'running',
      owner: r.owner,
      lease_expires_at: r.leaseEnds,
      finished_at: null,
      summary: null,
      error: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await store.db
    .insertInto('job_locks')
    .values({ job: r.job, owner: r.owner, run_id: run.id, lease_expires_at: r.leaseEnds })
    .execute();
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const settle = (ps: Promise<RunResult | null>[]) => Promise.all(ps);

for (const backend of BACKENDS) {
  describe(`engine on ${backend}`, () => {
    test('two engines on one database run each tick once', () =>
      withTestDb(backend, async (store, tdb) => {
        const clock = new FakeClock('2026-01-01T00:00:00.500Z');
        const a = probe('every-2s', '*/2 * * * * *');
        const b = probe('every-2s', '*/2 * * * * *');
        const e1 = new Engine({ store, clock, logger, jobs: [a.job], catchUpMissed: false });
        const e2 = new Engine({ store: await tdb.open(), clock, logger, jobs: [b.job], catchUpMissed: false });
        await e1.start({ timers: false });
        await e2.start({ timers: false });
        for (let i = 0; i < 5; i++) {
          clock.advance(2000);
          await Promise.all([settle(e1.tick()), settle(e2.tick())]);
        }
        assert.equal(a.calls.length + b.calls.length, 5, 'five ticks, five runs in total');
        const rows = await runsOf(store, 'every-2s');
        assert.equal(rows.length, 5);
        assert.ok(rows.every((r) => r.status === 'ok'));
        assert.equal(new Set(rows.map((r) => r.scheduled_for)).size, 5);
        await e1.stop();
        await e2.stop();
      }));

    test('a throwing job is recorded as error and the engine keeps going', () =>
      withTestDb(backend, async (store) => {
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const p = probe('flaky', '* * * * *', { throwOnce: true });
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        await settle(e.tick());
        clock.set('2026-01-01T00:02:00Z');
        await settle(e.tick());
        const rows = await runsOf(store, 'flaky');
        assert.deepEqual(
          rows.map((r) => r.status),
          ['error', 'ok'],
        );
        assert.equal(rows[0]!.error, 'boom');
        assert.ok(e.isRunning);
        await e.stop();
      }));

    test('a tick that comes while the job still runs is skipped and recorded', () =>
      withTestDb(backend, async (store) => {
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const hold = deferred();
        const p = probe('slow', '* * * * *', { hold: hold.promise });
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        const first = e.tick();
        await until(() => p.calls.length > 0, 'the run to start');
        clock.set('2026-01-01T00:02:00Z');
        const second = await settle(e.tick());
        assert.equal(second.find((r) => r)?.status, 'skipped');
        hold.resolve();
        await settle(first);
        const rows = await runsOf(store, 'slow');
        assert.deepEqual(
          rows.map((r) => r.status),
          ['ok', 'skipped'],
        );
        assert.equal(p.calls.length, 1);
        await e.stop();
      }));

    test('stop() waits for a run in flight', () =>
      withTestDb(backend, async (store) => {
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const hold = deferred();
        const p = probe('held', '* * * * *', { hold: hold.promise });
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        void e.tick();
        await until(() => p.calls.length > 0, 'the run to start');
        let stopped = false;
        const stopping = e.stop().then(() => (stopped = true));
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(stopped, false, 'stop() returned while the run was still going');
        hold.resolve();
        await stopping;
        const rows = await runsOf(store, 'held');
        assert.deepEqual(
          rows.map((r) => r.status),
          ['ok'],
        );
      }));

    test('a run left running by a dead process is marked abandoned and the job is free again', () =>
      withTestDb(backend, async (store) => {
        const t0 = new Date('2026-01-01T00:00:00Z').getTime();
        await leftRunning(store, { job: 'orphan', owner: 'dead-host:1', startedAt: t0, leaseEnds: t0 + 60_000 });
        const clock = new FakeClock(t0 + 90_000);
        const p = probe('orphan', '* * * * *');
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        clock.set(t0 + 120_000);
        await settle(e.tick());
        const rows = await runsOf(store, 'orphan');
        assert.deepEqual(
          rows.map((r) => r.status),
          ['abandoned', 'ok'],
        );
        assert.equal(p.calls.length, 1);
        await e.stop();
      }));

    test('a live run elsewhere is not abandoned before its lease ends', () =>
      withTestDb(backend, async (store) => {
        const t0 = new Date('2026-01-01T00:00:00Z').getTime();
        await leftRunning(store, { job: 'busy', owner: 'other:1', startedAt: t0, leaseEnds: t0 + 200_000 });
        const clock = new FakeClock(t0 + 30_000);
        const p = probe('busy', '* * * * *');
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        clock.set(t0 + 60_000);
        await settle(e.tick());
        const rows = await runsOf(store, 'busy');
        assert.deepEqual(
          rows.map((r) => r.status),
          ['running', 'skipped'],
        );
        assert.equal(p.calls.length, 0);
        await e.stop();
      }));

    test('a tick missed while the service was down runs once at start, coalesced', () =>
      withTestDb(backend, async (store, tdb) => {
        const t0 = new Date('2026-01-01T00:00:00Z').getTime();
        await store.db
          .insertInto('job_runs')
          .values({
            job: 'reset',
            scheduled_for: t0,
            started_at: t0,
            finished_at: t0 + 10,
            status: 'ok',
            owner: 'old',
            lease_expires_at: null,
            summary: null,
            error: null,
          })
          .execute();
        // Down for three days and a bit: three midnights passed, one catch-up run.
        const clock = new FakeClock(t0 + 3 * 86400_000 + 5 * 3600_000);
        const p1 = probe('reset', '0 0 * * *');
        const p2 = probe('reset', '0 0 * * *');
        const e1 = new Engine({ store, clock, logger, jobs: [p1.job] });
        const e2 = new Engine({ store: await tdb.open(), clock, logger, jobs: [p2.job] });
        await Promise.all([e1.start({ timers: false }), e2.start({ timers: false })]);
        await Promise.all([e1.stop(), e2.stop()]);
        assert.equal(p1.calls.length + p2.calls.length, 1);
        const rows = await runsOf(store, 'reset');
        assert.equal(rows.length, 2);
        assert.equal(new Date(rows[1]!.scheduled_for!).toISOString(), '2026-01-04T00:00:00.000Z');
        // With catch-up off nothing runs.
        const p3 = probe('reset', '0 0 * * *');
        clock.advance(86400_000);
        const e3 = new Engine({ store, clock, logger, jobs: [p3.job], catchUpMissed: false });
        await e3.start({ timers: false });
        await e3.stop();
        assert.equal(p3.calls.length, 0);
      }));

    test('a manual run evaluated at a past --now keeps a real-time lease: a live engine does not call it abandoned', () =>
      withTestDb(backend, async (store) => {
        const hold = deferred();
        const p = probe('manual', '0 0 1 1 *', { hold: hold.promise });
        const run = runManual(p.job, {
          store,
          clock: systemClock,
          now: new Date('2020-01-01T00:00:00Z'),
          logger,
        });
        await until(() => p.calls.length > 0, 'the run to start');
        const live = new Engine({
          store,
          clock: systemClock,
          logger,
          jobs: [],
          catchUpMissed: false,
        });
        await live.start({ timers: false });
        await settle(live.tick());
        const [row] = await runsOf(store, 'manual');
        assert.equal(row!.status, 'running');
        assert.ok(Math.abs(row!.started_at - Date.now()) < 60_000, 'the row records when the run really happened');
        assert.equal(p.calls[0]!.toISOString(), '2020-01-01T00:00:00.000Z', 'the job decided at the evaluated instant');
        hold.resolve();
        assert.equal((await run).status, 'ok');
        await live.stop();
      }));

    test('a database blip while claiming a tick delays the run; it does not drop it', () =>
      withTestDb(backend, async (store) => {
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const p = probe('blip', '* * * * *');
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false });
        await e.start({ timers: false });
        await store.db.schema.alterTable('job_runs').renameTo('job_runs_away').execute();
        clock.set('2026-01-01T00:01:00Z');
        const fired = e.tick();
        // The claim fails and the engine waits out its back-off on the clock: nothing ran, nothing was dropped.
        await until(() => clock.pending > 0, 'the back-off after the failed claim');
        assert.equal(p.calls.length, 0);
        assert.equal(clock.nextAt(), new Date('2026-01-01T00:01:00.500Z').getTime(), 'the first back-off is 500 ms');
        await store.db.schema.alterTable('job_runs_away').renameTo('job_runs').execute();
        await clock.runNext();
        const results = await settle(fired);
        assert.equal(results.find((r) => r)?.status, 'ok');
        assert.equal(p.calls.length, 1);
        assert.equal(
          new Date((await runsOf(store, 'blip'))[0]!.scheduled_for!).toISOString(),
          '2026-01-01T00:01:00.000Z',
        );
        await e.stop();
      }));

    test("old finished runs are pruned, keeping each job's latest and anything running", () =>
      withTestDb(backend, async (store) => {
        const t0 = new Date('2026-01-01T00:00:00Z').getTime();
        const day = 86400_000;
        const row = (job: string, at: number, status: 'ok' | 'running') => ({
          job,
          scheduled_for: at,
          started_at: at,
          finished_at: status === 'ok' ? at + 10 : null,
          status,
          owner: 'o',
          lease_expires_at: status === 'running' ? t0 + 40 * day : null,
          summary: null,
          error: null,
        });
        const manual = { ...row('m', t0 + 5 * day, 'ok'), scheduled_for: null };
        await store.db
          .insertInto('job_runs')
          .values([
            row('a', t0, 'ok'),
            row('a', t0 + day, 'ok'),
            row('a', t0 + 29 * day, 'ok'),
            row('b', t0 + 2 * day, 'ok'),
            row('c', t0 + 3 * day, 'running'),
            row('m', t0 + 4 * day, 'ok'),
            manual,
          ])
          .execute();
        const e = new Engine({
          store,
          clock: new FakeClock(t0 + 30 * day),
          logger,
          jobs: [],
          catchUpMissed: false,
          keepRunsDays: 14,
        });
        await e.start({ timers: false });
        await e.stop();
        const left = await store.db.selectFrom('job_runs').select(['job', 'scheduled_for']).orderBy('id').execute();
        // m's tick is older than a later manual run of m, but it is m's latest tick: catch-up needs it.
        assert.deepEqual(
          left.map((r) => [r.job, r.scheduled_for === null ? 'manual' : (r.scheduled_for - t0) / day]),
          [
            ['a', 29],
            ['b', 2],
            ['c', 3],
            ['m', 4],
            ['m', 'manual'],
          ],
        );
      }));

    test('the timer loop fires on its own and coalesces a clock jump', () =>
      withTestDb(backend, async (store) => {
        const clock = new FakeClock('2026-01-01T00:00:59.990Z');
        const p = probe('loop', '* * * * *');
        const e = new Engine({ store, clock, logger, jobs: [p.job], catchUpMissed: false, maxSleepMs: 10 });
        await e.start();
        // The clock jumps ten minutes: one run for the latest tick, not ten.
        clock.set('2026-01-01T00:10:00.000Z');
        await until(() => p.calls.length > 0, 'the timer loop to fire');
        await new Promise((r) => setTimeout(r, 50));
        await e.stop();
        const rows = await runsOf(store, 'loop');
        assert.equal(rows.length, 1);
        assert.equal(new Date(rows[0]!.scheduled_for!).toISOString(), '2026-01-01T00:10:00.000Z');
      }));
  });
}
