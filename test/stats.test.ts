import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import type { Store } from '../src/store/db.ts';
import { addToDay, noteActive, statsOfDays } from '../src/store/daily-stats.ts';
import { countTokenEvent } from '../src/store/stats.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { daysBefore, userGrowth, writeDailyStats } from '../src/jobs/stats.ts';
import { recentAnalytics } from '../src/jobs/analytics.ts';
import { deleteDueMessages } from '../src/jobs/message-deleter.ts';
import { dayBounds } from '../src/scheduler/schedule.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { runContext } from './support/context.ts';

const logger = createLogger({ level: 'silent' });
const TZ = 'Asia/Kolkata'; // UTC+5:30: a local day runs from 18:30 UTC the day before
const at = (iso: string) => new Date(iso).getTime();

test('dayBounds: local midnights, daylight-saving days, zones far east and west', () => {
  assert.deepEqual(dayBounds('2026-11-29', TZ), {
    startMs: at('2026-11-28T18:30:00Z'),
    endMs: at('2026-11-29T18:30:00Z'),
  });
  const spring = dayBounds('2026-03-08', 'America/New_York');
  assert.equal(spring.endMs - spring.startMs, 23 * 3600_000, 'the spring-forward day has 23 hours');
  const fall = dayBounds('2026-11-01', 'America/New_York');
  assert.equal(fall.endMs - fall.startMs, 25 * 3600_000, 'the fall-back day has 25 hours');
  assert.equal(dayBounds('2026-11-29', 'Pacific/Kiritimati').startMs, at('2026-11-28T10:00:00Z'), 'UTC+14');
  assert.equal(dayBounds('2026-11-29', 'Etc/GMT+12').startMs, at('2026-11-29T12:00:00Z'), 'UTC-12');
  assert.deepEqual(daysBefore('2026-03-01', 3), ['2026-02-28', '2026-02-27', '2026-02-26']);
});

async function addUser(store: Store, id: number, joinedAt: number, blockedAt: number | null = null) {
  await store.db
    .insertInto('users')
    .values({
      user_id: id,
      username: null,
      first_name: null,
      joined_at: joinedAt,
      is_banned: 0,
      user_access_count: 0,
      blocked_at: blockedAt,
    })
    .execute();
}

for (const backend of BACKENDS) {
  describe(`stats on ${backend}`, () => {
    test('the day that just ended, from seeded data, as computed by hand; missing days filled; a re-run replaces', () =>
      withTestDb(backend, async (store) => {
        // 2026-11-29 in Kolkata is 2026-11-28T18:30Z .. 2026-11-29T18:30Z.
        await addUser(store, 1, at('2026-11-01T00:00:00Z')); // long before
        await addUser(store, 2, at('2026-11-28T18:30:00Z')); // the day's first instant: new that day
        await addUser(store, 3, at('2026-11-29T18:29:59Z'), at('2026-11-29T10:00:00Z')); // new, blocked that day
        await addUser(store, 4, at('2026-11-29T18:30:00Z')); // the next day's first instant: not yet
        await addUser(store, 5, at('2026-10-01T00:00:00Z'), at('2026-11-30T01:00:00Z')); // blocked later
        await noteActive(store, '2026-11-29', 1);
        await noteActive(store, '2026-11-29', 2);
        await noteActive(store, '2026-11-29', 2); // once per user and day
        await noteActive(store, '2026-11-28', 5);
        for (const e of ['created', 'created', 'created', 'verified', 'bypassed'] as const)
          await countTokenEvent(store, '2026-11-29', e);
        await addToDay(store, '2026-11-29', { files_delivered: 4, deletions_done: 3, deletions_on_time: 2 });
        await addToDay(store, '2026-11-29', { deletions_late: 1, deletions_failed: 1, broadcasts_sent: 1 });
        await addToDay(store, '2026-11-29', { broadcasts_deleted: 1, recipients_reached: 7 });

        const clock = new FakeClock('2026-11-29T18:35:00Z'); // 00:05 on the 30th in Kolkata
        const ctx = { ...runContext(clock, logger), now: clock.now() };
        const s = await writeDailyStats(store, TZ, ctx);
        assert.deepEqual(s, { days_written: 31, first_day: '2026-10-30', last_day: '2026-11-29' });
        const [day] = await statsOfDays(store, ['2026-11-29']);
        const { day: d, computed_at: computedAt, ...figures } = day!;
        assert.equal(d, '2026-11-29');
        assert.equal(computedAt, clock.now().getTime());
        assert.deepEqual(figures, {
          users_total: 4, // 1, 2, 3 and 5; 4 joined the next day
          users_new: 2, // 2 and 3
          users_active: 2, // 1 and 2
          users_blocked: 1, // 3; 5 was blocked on the 30th
          tokens_created: 3,
          tokens_verified: 1,
          tokens_bypassed: 1,
          files_delivered: 4,
          deletions_done: 3,
          deletions_on_time: 2,
          deletions_late: 1,
          deletions_failed: 1,
          broadcasts_sent: 1,
          broadcasts_deleted: 1,
          recipients_reached: 7,
          broadcast_audience: 0,
        });
        const [before] = await statsOfDays(store, ['2026-11-28']);
        assert.deepEqual([before!.users_total, before!.users_new, before!.users_active], [2, 0, 1]);

        // A later run rewrites the day that ended and fills only what is missing.
        await noteActive(store, '2026-11-29', 3);
        await store.db.deleteFrom('daily_stats').where('day', '=', '2026-11-10').execute();
        const again = await writeDailyStats(store, TZ, ctx);
        assert.deepEqual(again, { days_written: 2, first_day: '2026-11-10', last_day: '2026-11-29' });
        assert.equal((await statsOfDays(store, ['2026-11-29']))[0]!.users_active, 3, 'replaced');
        assert.equal((await store.db.selectFrom('daily_stats').select('day').execute()).length, 31, 'one row a day');

        const dry = await writeDailyStats(store, TZ, { ...ctx, dryRun: true });
        assert.equal(dry.would_write, 1);

        // The status page's users chart: the days' rows, and today (the 30th in Kolkata) so far.
        assert.deepEqual(await userGrowth(store, TZ, clock.now(), 3), [
          { day: '2026-11-28', total: 2, new: 0 },
          { day: '2026-11-29', total: 4, new: 2 },
          { day: '2026-11-30', total: 5, new: 1 }, // user 4 joined at the 30th's first instant
        ]);
      }));

    test('the message deleter counts its rows per day: on time, late, failed', () =>
      withTestDb(backend, async (store) => {
        const T0 = at('2026-11-29T12:00:00Z');
        const emu = await BotApiEmulator.start({ now: () => T0 });
        try {
          const row = async (chat: number, deleteAt: number, sentAt = T0 - 60_000) =>
            insertDeletion(store, {
              userId: chat,
              chatId: chat,
              messageIds: [emu.addMessage(chat, { text: 'file', sentAt })],
              deleteAt,
              uniqueId: null,
              createdAt: T0 - 120_000,
            });
          await row(101, T0 - 500); // half a second late: on time
          await row(102, T0 - 5000); // five seconds late
          await row(103, T0 - 1000, T0 - 49 * 3600_000); // older than 48 h: Telegram will not delete it
          const deps = { store, telegram: emulatorTelegram(emu), owner: 'stats-test', timezone: TZ };
          const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
          assert.equal(s.removed, 3);
          const counters = await store.db.selectFrom('day_counters').selectAll().execute();
          assert.deepEqual(
            counters.map((c) =>
              [c.day, c.deletions_done, c.deletions_on_time, c.deletions_late, c.deletions_failed].map(String),
            ),
            [['2026-11-29', '2', '1', '1', '1']],
          );
        } finally {
          await emu.close();
        }
      }));

    test("the message deleter keeps the day's lateness histogram as it counts its rows", () =>
      withTestDb(backend, async (store) => {
        const T0 = Date.parse('2026-11-29T12:00:00Z');
        const emu = await BotApiEmulator.start({ now: () => T0 });
        try {
          const row = async (chat: number, deleteAt: number, sentAt = T0 - 60_000) =>
            insertDeletion(store, {
              userId: chat,
              chatId: chat,
              messageIds: [emu.addMessage(chat, { text: 'file', sentAt })],
              deleteAt,
              uniqueId: null,
              createdAt: T0 - 120_000,
            });
          await row(101, T0 - 500); // half a second late: the (0.25, 0.5] bucket
          await row(102, T0 - 5000); // five seconds: (2, 5]
          await row(104, T0 - 40_000); // forty seconds: (30, 60]
          await row(103, T0 - 1000, T0 - 49 * 3600_000); // older than 48 h: failed, in no bucket
          const deps = { store, telegram: emulatorTelegram(emu), owner: 'analytics-test', timezone: TZ };
          const s = await deleteDueMessages(deps, runContext(new FakeClock(T0), logger));
          assert.equal(s.removed, 4);
          const buckets = await store.db.selectFrom('deletion_lateness').selectAll().orderBy('le_ms').execute();
          assert.deepEqual(
            buckets.map((b) => [b.day, Number(b.le_ms), Number(b.count)]),
            [
              ['2026-11-29', 500, 1],
              ['2026-11-29', 5000, 1],
              ['2026-11-29', 60000, 1],
            ],
          );
          // Against its day counters: 3 done, 1 on time. p50: rank 1.5 in (2, 5] with 1 below: 2 + 3 × 0.5 = 3.5 s.
          const [today] = await recentAnalytics(store, TZ, new Date(T0), 1);
          assert.deepEqual([today!.on_time_share, today!.lateness_p50_s], [0.3333, 3.5]);
        } finally {
          await emu.close();
        }
      }));
  });
}
