import { beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Api } from 'grammy';
import { createJanitor } from '../src/janitor.ts';
import { FakeClock, systemClock, type Clock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import {
  deleteDueMessages,
  messageDeleterJob,
  type MessageDeleterDeps,
  type MessageDeleterSummary,
} from '../src/jobs/message-deleter.ts';
import { driveUntil } from './support/clock.ts';
import { jobWaker } from '../src/scheduler/waker.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import type { Store } from '../src/store/db.ts';
import { BACKENDS, type TestDb } from './support/db.ts';
import { deleterWorld } from './support/deleter-world.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { until } from './support/wait.ts';
import { runContext } from './support/context.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();

const ctx = (clock: Clock) => runContext(clock, logger);

/** One row per chat, due at T0, for `perChat` new messages of `emu` in that chat. */
async function dueRowPerChat(store: Store, emu: BotApiEmulator, chats: number[], perChat: number): Promise<void> {
  for (const c of chats)
    await insertDeletion(store, {
      userId: c,
      chatId: c,
      messageIds: sendMessages(emu, c, perChat),
      deleteAt: T0,
      uniqueId: 'f',
      createdAt: T0,
    });
}

async function addUser(store: Store, id: number) {
  await store.db
    .insertInto('users')
    .values({
      user_id: id,
      username: null,
      first_name: 'U',
      joined_at: T0,
      is_banned: 0,
      user_access_count: 0,
      blocked_at: null,
    })
    .execute();
}

function sendMessages(emu: BotApiEmulator, chat: number, n: number): number[] {
  return Array.from({ length: n }, () => emu.addMessage(chat, { text: 'file', sentAt: T0 - 60_000 }));
}

for (const backend of BACKENDS) {
  describe(`message deleter on ${backend}`, () => {
    const w = deleterWorld(backend, { now: T0, owner: 'test-a', tables: ['pending_deletions', 'users'] });
    let emu: BotApiEmulator;
    let store: Store;
    let deps: MessageDeleterDeps;
    let tdb: TestDb;
    beforeEach(() => ({ emu, store, deps, tdb } = w));

    test('deletes due rows (150 messages in 2 calls), sends Click Here, leaves rows not yet due', async () => {
      const big = sendMessages(emu, 1001, 150);
      const small = sendMessages(emu, 1002, 3);
      const later = sendMessages(emu, 1003, 2);
      await insertDeletion(store, {
        userId: 1001,
        chatId: 1001,
        messageIds: big,
        deleteAt: T0 - 1000,
        uniqueId: 'fileA',
        createdAt: T0 - 60_000,
      });
      await insertDeletion(store, {
        userId: 1002,
        chatId: 1002,
        messageIds: small,
        deleteAt: T0,
        uniqueId: 'fileB',
        createdAt: T0 - 60_000,
      });
      await insertDeletion(store, {
        userId: 1003,
        chatId: 1003,
        messageIds: later,
        deleteAt: T0 + 1,
        uniqueId: 'fileC',
        createdAt: T0 - 60_000,
      });
      const s = await deleteDueMessages(deps, ctx(new FakeClock(T0)));
      assert.equal(s.rows, 2);
      assert.equal(s.messages_deleted, 153);
      assert.equal(s.notices_sent, 2);
      assert.equal(s.transient, 0);
      assert.equal(emu.callsPerChat('deleteMessages').get(1001), 2, 'a 150-message row takes two deleteMessages calls');
      assert.equal(emu.callsOf('deleteMessage').length, 0);
      for (const id of big) assert.equal(emu.hasMessage(1001, id), false);
      for (const id of later) assert.equal(emu.hasMessage(1003, id), true);
      const notice = emu.messages(1001).at(-1)!;
      assert.equal(notice.reply_markup?.inline_keyboard?.[0]?.[0]?.text, 'Click Here');
      assert.equal(notice.reply_markup?.inline_keyboard?.[0]?.[0]?.url, `https://t.me/${emu.botUsername}?start=fileA`);
      const left = await store.db.selectFrom('pending_deletions').select(['chat_id']).execute();
      assert.deepEqual(
        left.map((r) => r.chat_id),
        [1003],
      );
    });

    test('a chat failing with 5xx keeps its row (attempts 1, back-off 30 s) and completes on a later run', async () => {
      const ids = sendMessages(emu, 2001, 2);
      await insertDeletion(store, {
        userId: 2001,
        chatId: 2001,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      emu.failChat(2001, { kind: 'status', code: 502, description: 'Bad Gateway' });
      const clock = new FakeClock(T0 + 5000);
      const s1 = await deleteDueMessages(deps, ctx(clock));
      assert.equal(s1.transient, 1);
      const row = await store.db
        .selectFrom('pending_deletions')
        .selectAll()
        .where('chat_id', '=', 2001)
        .executeTakeFirstOrThrow();
      assert.equal(row.attempts, 1);
      assert.equal(row.next_attempt_at, T0 + 5000 + 30_000);
      assert.match(row.last_error ?? '', /502/);
      assert.equal(row.claimed_by, null);
      // Not yet: the back-off holds it.
      clock.advance(10_000);
      assert.equal((await deleteDueMessages(deps, ctx(clock))).rows, 0);
      emu.failChat(2001, null);
      clock.advance(25_000);
      const s2 = await deleteDueMessages(deps, ctx(clock));
      assert.equal(s2.rows, 1);
      assert.equal(s2.notices_sent, 1);
      assert.equal(
        await store.db.selectFrom('pending_deletions').select('id').where('chat_id', '=', 2001).executeTakeFirst(),
        undefined,
      );
      for (const id of ids) assert.equal(emu.hasMessage(2001, id), false);
    });

    test('a chat that blocked the bot gets no notice, its row goes, its user is marked', async () => {
      await addUser(store, 3001);
      const ids = sendMessages(emu, 3001, 2);
      await insertDeletion(store, {
        userId: 3001,
        chatId: 3001,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      emu.blockUser(3001);
      const s = await deleteDueMessages(deps, ctx(new FakeClock(T0)));
      assert.equal(s.unreachable, 1);
      assert.equal(emu.callsOf('sendMessage').length, 0);
      assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
      const user = await store.db.selectFrom('users').selectAll().where('user_id', '=', 3001).executeTakeFirstOrThrow();
      assert.equal(user.blocked_at, T0);
    });

    test('messages older than 48 h are found one by one, reported undeletable, and not retried', async () => {
      const old = emu.addMessage(4001, { sentAt: T0 - 49 * 3600_000 });
      const fresh = emu.addMessage(4001, { sentAt: T0 - 60_000 });
      await insertDeletion(store, {
        userId: 4001,
        chatId: 4001,
        messageIds: [old, fresh, 999],
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      const s = await deleteDueMessages(deps, ctx(new FakeClock(T0)));
      // deleteMessages deletes what it can, then fails for the old one; asked one by one, the fresh and the
      // missing ids are gone, the old one is undeletable.
      assert.equal(s.undeletable, 1);
      assert.equal(s.gone, 2);
      assert.equal(s.messages_deleted, 2);
      assert.equal(emu.hasMessage(4001, fresh), false);
      assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
    });

    test('a failed notice is retried alone: the delete is not repeated', async () => {
      const ids = sendMessages(emu, 5001, 2);
      await insertDeletion(store, {
        userId: 5001,
        chatId: 5001,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      emu.failNext('sendMessage', { kind: 'status', code: 500, description: 'Internal Server Error' });
      const clock = new FakeClock(T0);
      const s1 = await deleteDueMessages(deps, ctx(clock));
      assert.equal(s1.transient, 1);
      const row = await store.db.selectFrom('pending_deletions').selectAll().executeTakeFirstOrThrow();
      assert.equal(row.messages_deleted, 1);
      emu.resetCalls();
      clock.advance(31_000);
      const s2 = await deleteDueMessages(deps, ctx(clock));
      assert.equal(s2.notices_sent, 1);
      assert.equal(emu.callsOf('deleteMessages').length, 0);
      assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
    });

    test('a rejected token stops the run loudly and keeps every row unclaimed', async () => {
      const ids = sendMessages(emu, 6001, 1);
      await insertDeletion(store, {
        userId: 6001,
        chatId: 6001,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      const bad = { ...deps, telegram: emulatorTelegram(emu, { token: '999:wrong-token-abcdefghijklmnopqrs' }) };
      await assert.rejects(deleteDueMessages(bad, ctx(new FakeClock(T0))), (e: Error) => {
        assert.match(e.message, /rejected the bot token/);
        assert.doesNotMatch(e.message, /wrong-token/);
        return true;
      });
      const row = await store.db.selectFrom('pending_deletions').selectAll().executeTakeFirstOrThrow();
      assert.equal(row.claimed_by, null);
      assert.equal(row.attempts, 0);
      assert.equal(emu.hasMessage(6001, ids[0]!), true);
    });

    test('two deleters working the same rows never delete one row twice', async () => {
      const chats = Array.from({ length: 40 }, (_, i) => 7000 + i);
      await dueRowPerChat(store, emu, chats, 3);
      const other = await tdb.open();
      const [a, b] = await Promise.all([
        deleteDueMessages({ ...deps, batchSize: 7 }, ctx(new FakeClock(T0))),
        deleteDueMessages({ ...deps, store: other, owner: 'test-b', batchSize: 7 }, ctx(new FakeClock(T0))),
      ]);
      assert.equal(a.rows + b.rows, 40);
      assert.equal(emu.callsOf('deleteMessages').length, 40);
      assert.equal(emu.callsOf('sendMessage').length, 40);
      assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 0);
    });

    test('a batch that outlasts its claim lease keeps its claims: a second runner (same process) takes none of them', async () => {
      // Real time for leases and Telegram's answers is one fake clock: Telegram answers only when the test lets
      // time pass, and the lease keeper renews on that same time.
      const wall = new FakeClock(T0);
      const slowEmu = await BotApiEmulator.start({ now: () => T0, clock: wall });
      try {
        const chats = Array.from({ length: 30 }, (_, i) => 7500 + i);
        await dueRowPerChat(store, slowEmu, chats, 1);
        // Every deleteMessages is answered 10 s after it arrives; the lease is 1 s, renewed every 500 ms.
        slowEmu.failNext('deleteMessages', { kind: 'slow', ms: 10_000 }, 30);
        const slow = { ...deps, leaseMs: 1000, telegram: emulatorTelegram(slowEmu) };
        const first = deleteDueMessages(slow, { ...ctx(new FakeClock(T0)), wallClock: wall });
        const claimedUntil = async () =>
          Number(
            (
              await store.db
                .selectFrom('pending_deletions')
                .select((eb) => eb.fn.max('claim_expires_at').as('t'))
                .executeTakeFirstOrThrow()
            ).t ?? 0,
          );
        await until(() => slowEmu.callsOf('deleteMessages').length === 30, 'the whole batch to be asked of Telegram');
        assert.equal(await claimedUntil(), T0 + 1000, 'claimed for one lease');
        // Three renewals, each a lease on from its own instant: the claims never run out while the batch waits.
        for (const at of [500, 1000, 1500]) {
          assert.equal(await wall.runNext(), T0 + at, `a renewal at +${at} ms`);
          await until(async () => (await claimedUntil()) === T0 + at + 1000, `the renewal at +${at} ms`);
        }
        // Past the first lease (it ended at +1 s): a second runner finds every row still claimed.
        const second = await deleteDueMessages(slow, { ...ctx(new FakeClock(T0)), wallClock: wall });
        assert.equal(second.rows, 0, 'the second runner found every row still claimed');
        // Telegram answers; the first runner finishes its batch.
        while ((await wall.runNext()) !== null && slowEmu.callsOf('sendMessage').length < 30);
        const a = await first;
        assert.equal(a.rows, 30);
        assert.equal(slowEmu.callsOf('sendMessage').length, 30, 'one notice per row');
      } finally {
        await slowEmu.close();
      }
    });

    test('a dry run counts due rows and changes nothing', async () => {
      const ids = sendMessages(emu, 8001, 4);
      await insertDeletion(store, {
        userId: 8001,
        chatId: 8001,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      const s = await deleteDueMessages(deps, { ...ctx(new FakeClock(T0)), dryRun: true });
      assert.equal(s.would_delete, 1);
      assert.equal(s.would_delete_messages, 4);
      assert.equal(emu.calls.length, 0);
      assert.equal((await store.db.selectFrom('pending_deletions').select('id').execute()).length, 1);
    });

    test('a 429 is waited out as Telegram asks (retry_after) and the row completes in the same run', async () => {
      const ids = sendMessages(emu, 9101, 2);
      await insertDeletion(store, {
        userId: 9101,
        chatId: 9101,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      emu.failNext('deleteMessages', {
        kind: 'status',
        code: 429,
        description: 'Too Many Requests: retry after 1',
        retryAfter: 1,
      });
      // The client waits on the run's clock: the retry can only go once the test lets retry_after pass.
      const clock = new FakeClock(T0);
      const patient = { ...deps, telegram: emulatorTelegram(emu, { retries: 1, clock }) };
      const run = deleteDueMessages(patient, ctx(clock));
      // The run's lease renewal waits on this clock too (20 s away); the pause is the timer 1 s away.
      await until(() => clock.nextAt() === T0 + 1000, 'the 429 and a pause of retry_after (1 s)');
      assert.equal(emu.callsOf('deleteMessages').length, 1);
      clock.advance(999);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(emu.callsOf('deleteMessages').length, 1, 'nothing asked inside the pause');
      clock.advance(1);
      const s = await run;
      assert.equal(s.transient, 0);
      assert.equal(s.notices_sent, 1);
      assert.deepEqual(
        emu.callsOf('deleteMessages').map((c) => c.status),
        [429, 200],
        'asked again once retry_after was over, in the same run',
      );
    });

    test('the shared throttle keeps a run under a Bot API rate limit: no 429 at all', async () => {
      // Telegram's one-second window and the throttle's slots on one fake clock: 60 calls at 20/s under a limit of 25/s.
      const clock = new FakeClock(T0);
      const limited = await BotApiEmulator.start({ now: () => T0, clock, rateLimit: 25 });
      try {
        const chats = Array.from({ length: 30 }, (_, i) => 9200 + i);
        await dueRowPerChat(store, limited, chats, 1);
        const throttled = { ...deps, telegram: emulatorTelegram(limited, { rate: 20, clock }) };
        let s: MessageDeleterSummary | null = null;
        const run = deleteDueMessages(throttled, ctx(clock)).then((r) => (s = r));
        await driveUntil(clock, () => s !== null, 'the run to finish');
        await run;
        assert.equal(s!.rows, 30);
        assert.equal(s!.transient, 0);
        assert.equal(limited.callsOf('deleteMessages').length + limited.callsOf('sendMessage').length, 60);
        assert.equal(limited.calls.filter((c) => c.status === 429).length, 0);
        // Each call (getMe too) 50 ms after the one before on the clock; at the limit's 25/s it could be 40 ms.
        const spread = (limited.calls.length - 1) * 50;
        assert.ok(clock.now().getTime() - T0 >= spread, "the calls were spaced at the throttle's rate");
      } finally {
        await limited.close();
      }
    });

    test('the bot token appears in no log line, error or summary, even when calls fail', async () => {
      const lines: string[] = [];
      const sink = new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) });
      const log = createLogger({ level: 'trace', destination: sink, secrets: [emu.token] });
      const ids = sendMessages(emu, 9301, 1);
      await insertDeletion(store, {
        userId: 9301,
        chatId: 9301,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      emu.failChat(9301, { kind: 'timeout' });
      const quick = { ...deps, telegram: emulatorTelegram(emu, { timeoutSeconds: 1 }) };
      const s = await deleteDueMessages(quick, { ...ctx(new FakeClock(T0)), logger: log });
      emu.failChat(9301, null);
      assert.equal(s.transient, 1);
      const row = await store.db
        .selectFrom('pending_deletions')
        .selectAll()
        .where('chat_id', '=', 9301)
        .executeTakeFirstOrThrow();
      const secret = emu.token.split(':')[1]!;
      assert.ok(lines.length > 0);
      for (const text of [...lines, JSON.stringify(s), row.last_error ?? ''])
        assert.ok(!text.includes(secret), `token in: ${text}`);
    });

    test("the library's run(job, { now }) decides as if at that instant", async () => {
      const ids = sendMessages(emu, 9401, 1);
      const inAnHour = Date.now() + 3600_000;
      await insertDeletion(store, {
        userId: 9401,
        chatId: 9401,
        messageIds: ids,
        deleteAt: inAnHour,
        uniqueId: 'f',
        createdAt: Date.now(),
      });
      const janitor = await createJanitor({
        store,
        bot: new Api(emu.token, { apiRoot: emu.url }),
        config: { telegramRate: 0 },
        logger,
        migrate: false,
      });
      const early = await janitor.run('message-deleter');
      assert.equal(early.summary.rows, 0);
      const later = await janitor.run('message-deleter', { now: new Date(inAnHour + 3600_000) });
      assert.equal(later.summary.rows, 1);
      assert.equal(later.evaluatedAt.getTime(), inAnHour + 3600_000);
      assert.equal(emu.hasMessage(9401, ids[0]!), false);
      await janitor.stop();
    });

    test('the waker deletes a row added after it started, never before its delete_at', async () => {
      const realDeps = { ...deps, telegram: emulatorTelegram(emu) };
      const job = messageDeleterJob(realDeps, '* * * * *');
      const waker = jobWaker({ ...job, wake: { ...job.wake!, pollMs: 50 } }, { clock: systemClock, logger });
      waker.start();
      try {
        const ids = sendMessages(emu, 9001, 2);
        const deleteAt = Date.now() + 600;
        await insertDeletion(store, {
          userId: 9001,
          chatId: 9001,
          messageIds: ids,
          deleteAt,
          uniqueId: 'f',
          createdAt: Date.now(),
        });
        emu.resetCalls();
        await until(() => emu.callsOf('sendMessage').length > 0, "the waker's notice");
        const call = emu.callsOf('deleteMessages')[0];
        assert.ok(call, 'the waker deleted the messages');
        assert.ok(call.at >= deleteAt, `deleted ${deleteAt - call.at} ms before delete_at`);
        assert.equal(emu.hasMessage(9001, ids[0]!), false);
      } finally {
        await waker.stop();
      }
    });
  });
}
