/**
 * A run is recorded and renewed only while this process still owns it: a run another process marked abandoned
 * keeps that status, and a run whose lease was taken is told to stop.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { Engine } from '../src/scheduler/engine.ts';
import type { JobDefinition, RunContext, RunResult } from '../src/scheduler/job.ts';
import * as runs from '../src/store/job-runs.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { until } from './support/wait.ts';

const logger = createLogger({ level: 'silent' });

/** A job whose run is given by the test; `contexts` holds what each run was given. */
function job(name: string, run: (ctx: RunContext) => Promise<Record<string, unknown>>) {
  const contexts: RunContext[] = [];
  const def: JobDefinition = {
    name,
    title: 'Probe',
    label: 'probe',
    schedule: '* * * * *',
    run: (ctx) => {
      contexts.push(ctx);
      return run(ctx);
    },
    successLine: (_s, at) => `✅ probe at ${at}`,
  };
  return { def, contexts };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const aborted = (signal: AbortSignal) =>
  new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
const firstRun = async (ps: Promise<RunResult | null>[]) => (await Promise.all(ps)).find((r) => r !== null);
const rowsOf = (store: Store, name: string) =>
  store.db.selectFrom('job_runs').selectAll().where('job', '=', name).orderBy('id').execute();

for (const backend of BACKENDS) {
  describe(`run ownership on ${backend}`, () => {
    test('a run another engine marked abandoned while the job still ran stays abandoned after the job returns', () =>
      withTestDb(backend, async (store, tdb) => {
        const hold = deferred();
        const p = job('long', async () => {
          await hold.promise;
          return { deleted: 3 };
        });
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const e1 = new Engine({ store, clock, logger, jobs: [p.def], catchUpMissed: false, leaseMs: 60_000 });
        await e1.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        const fired = e1.tick();
        await until(() => p.contexts.length === 1, 'the run to start');
        // This process stalls (a GC pause, a database outage) past the lease; another engine's clock is there.
        const e2 = new Engine({
          store: await tdb.open(),
          clock: new FakeClock('2026-01-01T00:02:01Z'),
          logger,
          jobs: [],
          catchUpMissed: false,
        });
        await e2.start({ timers: false });
        assert.deepEqual(
          (await rowsOf(store, 'long')).map((r) => r.status),
          ['abandoned'],
          'the other engine gave up on it',
        );
        hold.resolve();
        const r = await firstRun(fired);
        assert.equal(r?.status, 'abandoned', 'the result says what the database says');
        assert.match(r?.error ?? '', /finished ok but had been marked abandoned/);
        const [row] = await rowsOf(store, 'long');
        assert.equal(row!.status, 'abandoned', 'not overwritten as ok');
        assert.match(row!.error ?? '', /lease expired/);
        assert.equal(row!.summary, null);
        await Promise.all([e1.stop(), e2.stop()]);
      }));

    test('a run whose lease another engine took sees its signal aborted', () =>
      withTestDb(backend, async (store, tdb) => {
        const p = job('taken', async (ctx) => {
          await aborted(ctx.signal);
          return { stopped: 1 };
        });
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        // A 3 s lease is renewed every second (the keeper's shortest period).
        const e1 = new Engine({ store, clock, logger, jobs: [p.def], catchUpMissed: false, leaseMs: 3000 });
        await e1.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        const fired = e1.tick();
        await until(() => p.contexts.length === 1, 'the run to start');
        // Past the lease, another engine marks the run abandoned and runs the job's next tick itself.
        const q = job('taken', async () => ({ n: 1 }));
        const later = new FakeClock('2026-01-01T00:01:30Z');
        const e2 = new Engine({ store: await tdb.open(), clock: later, logger, jobs: [q.def], catchUpMissed: false });
        await e2.start({ timers: false });
        later.set('2026-01-01T00:02:00Z');
        assert.equal((await firstRun(e2.tick()))?.status, 'ok', 'the other engine took the job');
        assert.equal(p.contexts[0]!.signal.aborted, false, 'not told before its next renewal');
        // The next renewal, one period (1 s) on: it changes nothing, so the lease is lost.
        assert.equal(await clock.runNext(), Date.parse('2026-01-01T00:01:01Z'));
        await until(() => p.contexts[0]!.signal.aborted, 'the first run to be told its lease is lost');
        const r = await firstRun(fired);
        assert.equal(r?.status, 'abandoned');
        assert.deepEqual(
          (await rowsOf(store, 'taken')).map((x) => x.status),
          ['abandoned', 'ok'],
        );
        await Promise.all([e1.stop(), e2.stop()]);
      }));

    test('a scheduled run whose job lock another run took is told to stop before anyone marks it abandoned', () =>
      withTestDb(backend, async (store) => {
        const p = job('locked', async (ctx) => {
          await aborted(ctx.signal);
          return {};
        });
        const clock = new FakeClock('2026-01-01T00:00:30Z');
        const e = new Engine({ store, clock, logger, jobs: [p.def], catchUpMissed: false, leaseMs: 3000 });
        await e.start({ timers: false });
        clock.set('2026-01-01T00:01:00Z');
        const fired = e.tick();
        await until(() => p.contexts.length === 1, 'the run to start');
        // The lock expired and another process's run took it; the run row itself is still ours.
        await store.db
          .updateTable('job_locks')
          .set({ owner: 'other:1', run_id: 999_999 })
          .where('job', '=', 'locked')
          .execute();
        assert.equal(await clock.runNext(), Date.parse('2026-01-01T00:01:01Z'), 'the next renewal');
        await until(() => p.contexts[0]!.signal.aborted, 'the run to be told its lock is lost');
        assert.equal((await firstRun(fired))?.status, 'ok', 'its row was still its own, so its end is recorded');
        assert.equal(e.isRunning, true, 'the engine itself was not stopped');
        await e.stop();
      }));

    test('finishRun and renewLease change a run only under its owner while it is running, and say so', () =>
      withTestDb(backend, async (store) => {
        const db = store.db;
        const t = Date.parse('2026-01-01T00:00:00Z');
        const id = await runs.insertManualRun(db, 'j', 'me', t, t + 60_000);
        assert.equal(await runs.renewLease(db, 'j', id, 'someone-else', t + 90_000), false);
        assert.equal(await runs.renewLease(db, 'j', id, 'me', t + 90_000), true);
        assert.equal(await runs.finishRun(db, id, 'someone-else', 'ok', t + 1, {}, null), false);
        assert.equal((await runs.runById(db, id))!.status, 'running');
        assert.deepEqual(await runs.recoverAbandoned(db, t + 120_000), [{ id, job: 'j', owner: 'me' }]);
        assert.equal(await runs.renewLease(db, 'j', id, 'me', t + 180_000), false, 'an abandoned run is not ours');
        assert.equal(await runs.finishRun(db, id, 'me', 'ok', t + 121_000, { n: 1 }, null), false);
        const row = (await runs.runById(db, id))!;
        assert.equal(row.status, 'abandoned');
        assert.equal(row.lease_expires_at, null, 'renewal did not revive it');
      }));
  });
}
