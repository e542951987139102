import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Api } from 'grammy';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { createJanitor } from '../src/janitor.ts';
import { createMetrics } from '../src/metrics.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { FLAP_HOLD_MS, healthChange } from '../src/jobs/health-check.ts';
import { BACKENDS, withTestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';

const logger = createLogger({ level: 'silent' });
const T0 = Date.parse('2026-11-29T10:00:00Z');
const MIN = 60_000;

test('healthChange: what a verdict changes and whom it tells', () => {
  const first = healthChange(undefined, [], T0);
  assert.equal(first.tell, null, 'a first run that finds all healthy is no change');
  assert.equal(first.next?.healthy, 1);
  assert.equal(healthChange(undefined, ['deletions'], T0).tell, 'unhealthy', 'a first run that finds problems is');
  const healthy = first.next;
  assert.deepEqual(healthChange(healthy, [], T0 + MIN), { next: null, tell: null, heldBack: false }, 'unchanged');
  const down = healthChange(healthy, ['deletions', 'telegram'], T0 + MIN);
  assert.equal(down.tell, 'unhealthy');
  assert.deepEqual(down.next, {
    healthy: 0,
    failing: 'deletions,telegram',
    changed_at: T0 + MIN,
    unhealthy_told_at: T0 + MIN,
  });
  assert.equal(healthChange(down.next, ['deletions'], T0 + 2 * MIN).tell, null, 'still unhealthy: nothing sent');
  const up = healthChange(down.next, [], T0 + 3 * MIN);
  assert.equal(up.tell, 'healthy', 'a return to healthy is always told');
  const flap = healthChange(up.next!, ['deletions'], T0 + 10 * MIN);
  assert.deepEqual([flap.tell, flap.heldBack, flap.next?.healthy], [null, true, 0], 'held back within 30 minutes');
  const later = healthChange(up.next!, ['deletions'], T0 + MIN + FLAP_HOLD_MS);
  assert.equal(later.tell, 'unhealthy', '30 minutes after the last one: told');
});

for (const backend of BACKENDS) {
  describe(`health check on ${backend}`, () => {
    test('an overdue deletion makes the run an error naming it; admins are told once, and once more when healthy', () =>
      withTestDb(backend, async (store) => {
        const emu = await BotApiEmulator.start({ now: () => T0 });
        try {
          const clock = new FakeClock(T0);
          const metrics = createMetrics();
          const janitor = await createJanitor({
            store,
            clock,
            logger,
            bot: new Api(emu.token, { apiRoot: emu.url }),
            hooks: metrics.hooks,
            config: { adminIds: [11, 12], telegramRate: 0, catchUpMissed: false },
          });
          const toAdmins = () =>
            emu.callsOf('sendMessage').map((c): [number, string] => [Number(c.params.chat_id), String(c.params.text)]);
          const healthy = await janitor.run('health-check');
          assert.equal(healthy.status, 'ok', healthy.error);
          assert.ok(healthy.status === 'ok');
          assert.equal(healthy.summary.healthy, true);
          assert.deepEqual(Object.keys(healthy.summary.checks).sort().slice(0, 3), [
            'broadcasts',
            'database',
            'deletions',
          ]);
          assert.equal(healthy.summary.checks.telegram, true);
          assert.equal(typeof healthy.summary.telegram_latency_ms, 'number');
          assert.deepEqual(toAdmins(), [], 'a first healthy run tells nobody');

          const row = await insertDeletion(store, {
            userId: 5,
            chatId: 5,
            messageIds: [1],
            deleteAt: T0 - 6 * MIN,
            uniqueId: null,
            createdAt: T0 - 60 * MIN,
          });
          const sick = await janitor.run('health-check');
          assert.equal(sick.status, 'error');
          assert.match(sick.error ?? '', /unhealthy: deletions: 1 pending deletions more than 5 minutes overdue/);
          assert.equal(sick.summary.told, 'unhealthy');
          assert.deepEqual(
            toAdmins().map(([chat]) => chat),
            [11, 12],
            'each admin once',
          );
          assert.match(toAdmins()[0]![1], /unhealthy[\s\S]*deletions: 1 pending deletions/);
          assert.match(await metrics.render(), /tg_janitor_health_check_ok\{check="deletions"\} 0/);
          const [recorded] = await store.db
            .selectFrom('job_runs')
            .selectAll()
            .where('job', '=', 'health-check')
            .orderBy('id', 'desc')
            .limit(1)
            .execute();
          assert.equal(recorded!.status, 'error');
          assert.match(recorded!.summary ?? '', /"healthy":false/, 'the summary is kept with the error');

          clock.advance(5 * MIN);
          assert.equal((await janitor.run('health-check')).status, 'error');
          assert.equal(toAdmins().length, 2, 'still unhealthy: nothing more sent');

          await store.db.deleteFrom('pending_deletions').where('id', '=', row).execute();
          clock.advance(5 * MIN);
          const back = await janitor.run('health-check');
          assert.equal(back.status, 'ok');
          assert.deepEqual(
            toAdmins()
              .slice(2)
              .map(([chat, text]) => [chat, /healthy again/.test(text)]),
            [
              [11, true],
              [12, true],
            ],
          );
          assert.match(await metrics.render(), /tg_janitor_health_check_ok\{check="deletions"\} 1/);

          // Unhealthy again 10 minutes after the last "unhealthy": held back (flapping); the state still says so.
          await insertDeletion(store, {
            userId: 6,
            chatId: 6,
            messageIds: [2],
            deleteAt: T0,
            uniqueId: null,
            createdAt: T0 - MIN,
          });
          const flap = await janitor.run('health-check');
          assert.equal(flap.status, 'error');
          assert.equal(flap.summary.held_back, true);
          assert.equal(toAdmins().length, 4, 'held back');
          await janitor.stop();
        } finally {
          await emu.close();
        }
      }));
  });
}
