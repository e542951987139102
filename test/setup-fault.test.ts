/**
 * A setup fault rests the job across processes: scheduled runs and wake-ups wait (no Telegram call), a manual run
 * tries at once, /healthz names the job, and a run that works again clears it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api } from 'grammy';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { createJanitor } from '../src/janitor.ts';
import { checkHealth } from '../src/jobs/status.ts';
import { underSetupFaultBackoff } from '../src/jobs/setup-faults.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();

for (const backend of BACKENDS) {
  describe(`${backend}: a setup fault rests the job`, () => {
    test('scheduled runs and wake-ups wait, a manual run tries at once, a working run clears it', async () => {
      const emu = await BotApiEmulator.start({ now: () => T0, strictChats: true });
      try {
        await withTestDb(backend, async (store) => {
          const chats = Array.from({ length: 30 }, (_, i) => 40_000 + i);
          for (const c of chats) {
            await insertDeletion(store, {
              userId: c,
              chatId: c,
              messageIds: [1],
              deleteAt: T0 - 1000,
              createdAt: T0 - 1,
            });
          }
          // Started a second before a tick, so the first tick is at T0.
          const clock = new FakeClock(T0 - 1000);
          const janitor = await createJanitor({
            store,
            clock,
            logger,
            bot: new Api(emu.token, { apiRoot: emu.url }),
            config: {
              telegramRate: 0,
              catchUpMissed: false,
              schedules: { 'message-deleter': '*/20 * * * * *', 'broadcast-deleter': 'off' },
            },
          });
          await janitor.engine.start({ timers: false });
          clock.set(T0);
          const tick = async () => {
            const runs = await Promise.all(janitor.engine.tick(clock.now()));
            return runs.find((r) => r?.job === 'message-deleter');
          };
          const health = () =>
            checkHealth({
              config: janitor.config,
              store,
              clock,
              startedAt: new Date(T0),
              engineRunning: true,
              telegram: true,
            });
          try {
            const first = await tick();
            assert.equal(first?.status, 'error');
            assert.match(first?.error ?? '', /chat not found.*BOT_TOKEN.*BOT_API_ROOT/s);
            const fault = await store.db.selectFrom('job_faults').selectAll().executeTakeFirstOrThrow();
            assert.deepEqual(
              [fault.job, Number(fault.count), Number(fault.retry_at)],
              ['message-deleter', 1, T0 + 60_000],
            );
            const h = await health();
            assert.equal(h.ok, false);
            assert.ok(
              h.problems.some((p) => p.startsWith('message-deleter') && /setup fault/.test(p)),
              h.problems.join('; '),
            );

            // 20 s later: the scheduled run waits for the rest to end, and asks Telegram nothing.
            emu.resetCalls();
            clock.advance(20_000);
            const resting = await tick();
            assert.equal(resting?.status, 'error');
            assert.match(resting?.error ?? '', /resting after a setup fault until/);
            assert.equal(emu.calls.length, 0, 'no call while resting');
            // A wake-up waits too.
            const woke = await underSetupFaultBackoff(
              { store, job: 'message-deleter', clock, logger, trigger: 'wake-up' },
              async () => 'worked',
            );
            assert.equal(woke, null);

            // A person's run tries at once (and meets the same storm): the rest is not lengthened.
            const manual = await janitor.run('message-deleter');
            assert.equal(manual.status, 'error');
            assert.ok(emu.calls.length > 0, 'the manual run asked Telegram');
            const still = await store.db.selectFrom('job_faults').selectAll().executeTakeFirstOrThrow();
            assert.deepEqual([Number(still.count), Number(still.retry_at)], [1, T0 + 60_000]);

            // The setup is fixed: chats answer again. The first tick after the rest does the work and clears it.
            for (const c of chats) emu.addChat(c);
            clock.advance(40_000);
            const fixed = await tick();
            assert.equal(fixed?.status, 'ok', fixed?.error);
            assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
            assert.equal((await store.db.selectFrom('job_faults').select('job').execute()).length, 0);
            assert.equal((await health()).ok, true);
          } finally {
            await janitor.stop();
          }
        });
      } finally {
        await emu.close();
      }
    });
  });
}
