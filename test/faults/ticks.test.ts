/**
 * Fault scenario 2, once per tick: three `tg-janitor start` processes on one PostgreSQL, and three on one SQLite
 * file, run token cleanup every second for at least 100 ticks. Every tick between the first and the last recorded
 * has exactly one `job_runs` row, and each run happened in exactly one process.
 *
 * What is counted: a tick is a `scheduled_for` second of token-cleanup in `job_runs`. `ok` = the tick ran (once:
 * the run's success line appears in exactly one process's log); `skipped` = the tick was recorded but not run
 * because the previous run still held the job (the engine's documented answer to an overlap). Anything else
 * (`error`, `abandoned`, a `running` row after the stop, a second row for one tick, a missing second) fails.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDb, type Backend } from '../support/db.ts';
import { Fleet, secs, serviceEnv, waitUntil } from '../support/janitor-process.ts';

const MIN_TICKS = 100;

describe('once per tick: 3 instances, a per-second schedule, at least 100 ticks', { concurrency: true }, () => {
  for (const backend of ['postgres', 'sqlite'] as Backend[]) {
    test(`${backend}: every tick recorded exactly once and run exactly once`, { timeout: 300_000 }, async (t) => {
      const tdb = await createTestDb(backend);
      const fleet = new Fleet(
        3,
        serviceEnv({
          databaseUrl: tdb.url,
          extra: {
            SCHEDULE_TOKEN_CLEANUP: '* * * * * *',
            SCHEDULE_MESSAGE_DELETER: 'off',
            SCHEDULE_BROADCAST_DELETER: 'off',
            SCHEDULE_TOKEN_COUNT_RESET: 'off',
          },
        }),
        `${backend}-instance`,
      );
      try {
        const store = await tdb.open();
        const ticks = async () =>
          Number(
            (
              await store.db
                .selectFrom('job_runs')
                .select((eb) => eb.fn.count('scheduled_for').distinct().as('n'))
                .where('job', '=', 'token-cleanup')
                .where('scheduled_for', 'is not', null)
                .executeTakeFirstOrThrow()
            ).n,
          );
        const t0 = Date.now();
        await fleet.start();
        await waitUntil(async () => (await ticks()) >= MIN_TICKS + 5, `${MIN_TICKS + 5} ticks`, 240_000, 1000);
        const exits = await fleet.stop();
        const tEnd = Date.now();

        const rows = await store.db
          .selectFrom('job_runs')
          .select(['id', 'scheduled_for', 'status', 'owner', 'error'])
          .where('job', '=', 'token-cleanup')
          .orderBy('scheduled_for')
          .execute();
        const manual = rows.filter((r) => r.scheduled_for === null).length;
        const perTick = new Map<number, number>();
        for (const r of rows)
          if (r.scheduled_for !== null) perTick.set(r.scheduled_for, (perTick.get(r.scheduled_for) ?? 0) + 1);
        const seconds = [...perTick.keys()].sort((a, b) => a - b);
        const first = seconds[0]!;
        const last = seconds.at(-1)!;
        const duplicates = [...perTick.values()].reduce((n, c) => n + c - 1, 0);
        const notOnSecond = seconds.filter((s) => s % 1000 !== 0).length;
        const gaps: string[] = [];
        for (let s = first; s <= last; s += 1000) if (!perTick.has(s)) gaps.push(new Date(s).toISOString());
        const status: Record<string, number> = {};
        for (const r of rows) status[r.status] = (status[r.status] ?? 0) + 1;
        const owners: Record<string, number> = {};
        for (const r of rows) if (r.status === 'ok') owners[r.owner] = (owners[r.owner] ?? 0) + 1;

        // The processes' own account: each ok run logged its success once, in one process.
        const ranIn = new Map<number, number>();
        for (const m of fleet.members) {
          for (const l of m.logs()) {
            if (l.job === 'token-cleanup' && l.status === 'ok' && typeof l.run_id === 'number')
              ranIn.set(l.run_id, (ranIn.get(l.run_id) ?? 0) + 1);
          }
        }
        const okIds = rows.filter((r) => r.status === 'ok').map((r) => Number(r.id));
        const ranTwice = [...ranIn.entries()].filter(([, n]) => n > 1).map(([id]) => id);
        const okNotLogged = okIds.filter((id) => !ranIn.has(id));
        const loggedNotOk = [...ranIn.keys()].filter((id) => !okIds.includes(id));

        const figures = {
          ticks: seconds.length,
          duplicates,
          gaps: gaps.length,
          ok: status.ok ?? 0,
          skipped: status.skipped ?? 0,
          other: Object.fromEntries(Object.entries(status).filter(([k]) => k !== 'ok' && k !== 'skipped')),
          ok_runs_per_process: Object.values(owners),
          runs_logged_twice: ranTwice.length,
          seconds: secs(t0, tEnd),
        };
        t.diagnostic(`ticks figures (${backend}): ${JSON.stringify(figures)}`);
        if (gaps.length) t.diagnostic(`missing ticks: ${gaps.slice(0, 20).join(', ')}`);

        assert.ok(seconds.length >= MIN_TICKS, `at least ${MIN_TICKS} ticks (${seconds.length})`);
        assert.equal(manual, 0, 'no manual runs');
        assert.equal(notOnSecond, 0, 'every tick on a whole second');
        assert.equal(duplicates, 0, 'no tick recorded twice');
        assert.deepEqual(gaps, [], 'no tick missing between the first and the last');
        assert.deepEqual(figures.other, {}, 'every tick ok or skipped (none error, abandoned or left running)');
        assert.deepEqual(ranTwice, [], 'no run logged by two processes');
        assert.deepEqual(okNotLogged, [], 'every ok run logged by the process that ran it');
        assert.deepEqual(loggedNotOk, [], 'every logged success is an ok row');
        for (const [i, e] of exits.entries()) assert.equal(e?.code, 0, `instance ${i + 1} stopped cleanly on SIGTERM`);
      } finally {
        await fleet.killAll();
        fleet.saveLogs(`ticks-${backend}`);
        await tdb.drop();
      }
    });
  }
});
