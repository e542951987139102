/**
 * Fault scenario 6, a setup fault: for a while every chat answers "400 Bad Request: chat not found" (as when
 * BOT_TOKEN is another bot's, or BOT_API_ROOT a Bot API server that lost its state), with due deliveries over 50
 * distinct chats whose users are registered; then the chats answer again.
 *
 * Required: 20 or more distinct chats answering "chat not found" with no success between them, within one run, stop
 * the run as a configuration fault. Rows and users stay exactly as they were (nothing removed, no users.blocked_at,
 * attempts / next_attempt_at unchanged), the run records `error` naming BOT_TOKEN / BOT_API_ROOT, /healthz answers
 * 503, and the job backs off (at least a minute, at most 15) and resumes by itself once chats answer: then
 * everything is done within about 3 minutes and no user is marked blocked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { BotApiEmulator } from '../support/bot-api-emulator.ts';
import { createTestDb } from '../support/db.ts';
import { upsertUser } from '../../src/store/users.ts';
import { JanitorProcess, secs, serviceEnv, waitUntil } from '../support/janitor-process.ts';
import { messagesLeft, noticeFigures, noticesPerRow, rng, seedDeliveries, workLeft } from '../support/deliveries.ts';

const MIN_STORM_MS = 45_000;
const DONE_WITHIN_MS = 180_000;
const BACKOFF_MIN_MS = 60_000;
const BACKOFF_MAX_MS = 15 * 60_000;

test(
  'chat not found from every chat: a configuration fault, nothing removed, no user marked, resumes by itself',
  { timeout: 420_000 },
  async (t) => {
    const emu = await BotApiEmulator.start();
    const tdb = await createTestDb('postgres');
    const svc = new JanitorProcess('instance-1', serviceEnv({ databaseUrl: tdb.url, emu }));
    try {
      const store = await tdb.open();
      const chats = Array.from({ length: 50 }, (_, i) => 70_001 + i);
      const tSeed = Date.now();
      for (const c of chats)
        await upsertUser(store, { userId: c, username: `user${c}`, firstName: 'User', nowMs: tSeed - 86_400_000 });
      const deliveries = await seedDeliveries(store, emu, {
        rows: 60,
        chats,
        deleteAt: () => tSeed - 1000,
        maxMessages: 3,
        random: rng(6),
        prefix: 'n',
      });
      const snapshot = async () =>
        (
          await store.db
            .selectFrom('pending_deletions')
            .select(['id', 'attempts', 'next_attempt_at', 'messages_deleted', 'claimed_by'])
            .orderBy('id')
            .execute()
        ).map((r) => JSON.stringify([r.id, r.attempts, r.next_attempt_at, r.messages_deleted]));
      const blockedUsers = async () =>
        (await store.db.selectFrom('users').select('user_id').where('blocked_at', 'is not', null).execute()).map(
          (u) => u.user_id,
        );
      const initial = await snapshot();

      emu.failAllChats({ kind: 'status', code: 400, description: 'Bad Request: chat not found' });
      const tStorm = Date.now();
      await svc.start();
      // The storm lasts at least MIN_STORM_MS and past the first minute sweep that starts after the fault is recorded,
      // so a scheduled (recorded) run meets it too. (A sweep at a minute boundary that comes while the first wake-up
      // still holds every row finds nothing to do; it must not be the only one the storm lasts for.)
      const sweepAfter = (ms: number) => Math.ceil((ms + 1000) / 60_000) * 60_000;
      let stormEnd = Math.max(tStorm + MIN_STORM_MS, sweepAfter(Date.now()) + 5000);
      let faultSeen = false;
      const violations: string[] = [];
      const health: Record<string, number> = {};
      let first503: number | null = null;
      while (Date.now() < stormEnd) {
        const at = Date.now();
        const rows = await snapshot();
        if (rows.length !== initial.length)
          violations.push(`+${secs(tStorm, at)} s: ${initial.length - rows.length} rows removed`);
        else if (rows.join() !== initial.join())
          violations.push(`+${secs(tStorm, at)} s: rows changed (attempts / next_attempt_at / messages_deleted)`);
        const blocked = await blockedUsers();
        if (blocked.length) violations.push(`+${secs(tStorm, at)} s: ${blocked.length} users marked blocked`);
        if (!faultSeen && (await store.db.selectFrom('job_faults').select('job').execute()).length > 0) {
          faultSeen = true;
          stormEnd = Math.max(stormEnd, sweepAfter(Date.now()) + 5000);
        }
        const h = await svc.healthz(2000);
        health[h.status] = (health[h.status] ?? 0) + 1;
        if (h.status === 503 && first503 === null) first503 = at;
        await sleep(Math.max(0, 1000 - (Date.now() - at))); // one look a second while the storm lasts
      }
      emu.failAllChats(null);
      const tCalm = Date.now();
      const runs = await store.db
        .selectFrom('job_runs')
        .select(['status', 'error', 'scheduled_for'])
        .where('job', '=', 'message-deleter')
        .execute();
      const faultRuns = runs.filter((r) => r.status === 'error' && /BOT_TOKEN|BOT_API_ROOT/.test(r.error ?? ''));
      const stormCalls = emu.calls.filter((c) => c.at >= tStorm && c.at < tCalm && c.params.chat_id !== undefined);
      const notFound = stormCalls.filter((c) => c.status === 400);

      let done = false;
      let left = await workLeft(store);
      try {
        await waitUntil(
          async () => {
            left = await workLeft(store);
            return left.deletions === 0 && messagesLeft(emu, deliveries) === 0;
          },
          'every delivery done after the storm',
          DONE_WITHIN_MS,
        );
        done = true;
      } catch {
        // reported below with the figures
      }
      const tDone = Date.now();
      const blockedAfter = await blockedUsers();
      // The back-off: chat calls come in bursts; the first quiet gap after the first burst of "chat not found".
      const chatCalls = emu.calls
        .filter((c) => c.at >= tStorm && c.params.chat_id !== undefined)
        .map((c) => c.at)
        .sort((a, b) => a - b);
      let backoffMs: number | null = null;
      for (let i = 1; i < chatCalls.length; i++) {
        if (chatCalls[i]! - chatCalls[i - 1]! >= 10_000) {
          backoffMs = chatCalls[i]! - chatCalls[i - 1]!;
          break;
        }
      }
      const firstResumed = emu.calls.find((c) => c.at >= tCalm && c.params.chat_id !== undefined && c.status === 200);
      const { missing, repeats } = noticeFigures(noticesPerRow(emu, deliveries));
      const figures = {
        chats: chats.length,
        rows: deliveries.length,
        storm_s: secs(tStorm, tCalm),
        chat_calls_during_storm: stormCalls.length,
        distinct_chats_answered_not_found: new Set(notFound.map((c) => Number(c.params.chat_id))).size,
        violations_during_storm: violations.length,
        healthz_during_storm: health,
        seconds_to_503: first503 === null ? null : secs(tStorm, first503),
        recorded_fault_runs: faultRuns.length,
        message_deleter_runs_during_storm: runs.map((r) => r.status),
        backoff_s: backoffMs === null ? null : Math.round(backoffMs / 1000),
        seconds_to_resume: firstResumed ? secs(tCalm, firstResumed.at) : null,
        seconds_to_done: done ? secs(tCalm, tDone) : null,
        rows_left: left.deletions,
        users_blocked_after: blockedAfter.length,
        notices_missing: missing.length,
        notices_repeated: repeats,
      };
      t.diagnostic(`chat-not-found figures: ${JSON.stringify(figures)}`);
      if (violations.length) t.diagnostic(`during the storm: ${violations.slice(0, 5).join('; ')}`);

      assert.ok(svc.alive, 'the service stayed up');
      assert.deepEqual(violations, [], 'during the storm no row removed or changed and no user marked');
      assert.ok(
        faultRuns.length >= 1,
        `a message-deleter run recorded error naming BOT_TOKEN / BOT_API_ROOT (runs: ${JSON.stringify(runs.map((r) => [r.status, r.error?.slice(0, 120)]))})`,
      );
      assert.ok(first503 !== null, `/healthz answered 503 during the storm (${JSON.stringify(health)})`);
      assert.ok(
        backoffMs !== null && backoffMs >= BACKOFF_MIN_MS - 1000 && backoffMs <= BACKOFF_MAX_MS,
        `the job backed off 1-15 min after the fault (${figures.backoff_s} s)`,
      );
      assert.ok(
        done,
        `everything done within ${DONE_WITHIN_MS / 1000} s after the storm (${left.deletions} rows left)`,
      );
      assert.deepEqual(blockedAfter, [], 'no user marked blocked');
      assert.deepEqual(missing, [], 'every row got its "deleted" notice');
      const exit = await svc.stop();
      assert.equal(exit?.code, 0, 'stopped cleanly on SIGTERM');
    } finally {
      if (svc.alive) await svc.current!.kill('SIGKILL');
      svc.saveLogs('chat-not-found');
      await emu.close();
      await tdb.drop();
    }
  },
);
