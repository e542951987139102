import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ShiftedClock } from './support/clock.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { BACKENDS, createTestDb, type TestDb } from './support/db.ts';
import { until } from './support/wait.ts';
import { DAILY_STATS_FIELDS, saveDay, type DayFigures } from '../src/store/daily-stats.ts';
import { addLateness, emptyLateness, latenessBucket } from '../src/store/analytics.ts';
import { BotApiEmulator, type EmulatedMessage } from './support/bot-api-emulator.ts';

const ADMIN = 999;
const CHANNEL = -1001234567890;
const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const MIN = 60_000;

for (const backend of BACKENDS) {
  describe(`the bots end to end on ${backend}`, () => {
    let emu: BotApiEmulator;
    let tdb: TestDb;
    let svc: Service;
    const clock = new ShiftedClock('2026-11-29T10:00:00Z');

    before(async () => {
      emu = await BotApiEmulator.start();
      tdb = await createTestDb(backend);
      const config = loadConfig({
        DATABASE_URL: tdb.url,
        BOT_TOKEN: emu.token,
        BOT_API_ROOT: emu.url,
        ADMIN_IDS: String(ADMIN),
        STORAGE_CHANNEL_ID: String(CHANNEL),
        HTTP_PORT: '0',
        TOKEN_GENERATION_LIMIT: '2',
        SHORTENER_DOMAINS: 'short.example',
        TELEGRAM_RETRIES: '0',
        TELEGRAM_RATE: '0',
        // Only the on-time wake-ups and manual runs work here; no cron fires during the test.
        SCHEDULE_MESSAGE_DELETER: '0 0 1 1 *',
        SCHEDULE_BROADCAST_DELETER: 'off',
        SCHEDULE_TOKEN_CLEANUP: 'off',
        SCHEDULE_TOKEN_COUNT_RESET: 'off',
        // Run by hand below; an hourly job would also be judged stale by the health check after the clock's jumps.
        SCHEDULE_ANALYTICS: 'off',
      });
      svc = await startService(config, logger, { clock, pollTimeoutS: 1 });
    });
    after(async () => {
      await svc.stop();
      await tdb.drop();
      await emu.close();
    });

    const botMessages = (chat: number) => emu.messages(chat).filter((m) => m.fromBot);
    /** Sends `text` as `user` and waits for the bot's next message in that chat. */
    async function ask(user: number, text: string, extra: object = {}): Promise<EmulatedMessage> {
      const before = botMessages(user).length;
      emu.sendUserMessage({ id: user, first_name: `User${user}` }, text, extra);
      for (let i = 0; i < 200; i++) {
        const now = botMessages(user);
        if (now.length > before) return now[before]!;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no answer to "${text}" from the bot`);
    }
    const user = (id: number) =>
      svc.store.db.selectFrom('users').selectAll().where('user_id', '=', id).executeTakeFirst();
    const verifyUrl = (m: EmulatedMessage) => m.reply_markup?.inline_keyboard?.[0]?.[0]?.url as string;

    let fileUid = '';
    let fileMessages: number[] = [];

    test('an admin makes a share link for storage channel messages; non-admins get silence', async () => {
      fileMessages = [emu.addMessage(CHANNEL, { text: 'part 1' }), emu.addMessage(CHANNEL, { text: 'part 2' })];
      const reply = await ask(ADMIN, `/link ${fileMessages[0]}-${fileMessages[1]}`);
      const m = /https:\/\/t\.me\/janitor_test_bot\?start=([A-Za-z0-9]+)/.exec(reply.text ?? '');
      assert.ok(m, reply.text);
      fileUid = m[1]!;
      const bad = await ask(ADMIN, '/link 7-x');
      assert.match(bad.text ?? '', /Usage: \/link/);
      emu.sendUserMessage({ id: 1001 }, '/setdeletetime 5');
      emu.sendUserMessage({ id: 1001 }, '/help');
      await until(() => botMessages(1001).length === 1, 'the answer to /help');
      assert.match(
        botMessages(1001)[0]!.text ?? '',
        /Open a file link/,
        'the only answer is to /help: /setdeletetime from a non-admin got silence',
      );
    });

    test('a file gone from the storage channel: a clear answer, the access kept, the user not marked blocked', async () => {
      const link = await ask(ADMIN, '/link 99999');
      const uid = /start=([A-Za-z0-9]+)/.exec(link.text ?? '')![1]!;
      await svc.store.db
        .insertInto('users')
        .values({
          user_id: 1005,
          username: null,
          first_name: 'U',
          joined_at: 0,
          is_banned: 0,
          user_access_count: 1,
          blocked_at: null,
        })
        .execute();
      const r = await ask(1005, `/start ${uid}`);
      assert.match(r.text ?? '', /no longer available/);
      const u = (await user(1005))!;
      assert.equal(u.user_access_count, 1, 'the access was given back');
      assert.equal(u.blocked_at, null);
    });

    test('delivery failures: an unreadable channel, a 429 and a 5xx each get their own answer; only the 5xx keeps the access', async () => {
      const uid = /start=([A-Za-z0-9]+)/.exec((await ask(ADMIN, `/link ${fileMessages[0]}`)).text ?? '')![1]!;
      await svc.store.db
        .insertInto('users')
        .values({
          user_id: 1007,
          username: null,
          first_name: 'U',
          joined_at: 0,
          is_banned: 0,
          user_access_count: 1,
          blocked_at: null,
        })
        .execute();
      const access = async () => (await user(1007))!.user_access_count;
      const copies = () => emu.callsOf('copyMessages').filter((c) => Number(c.params.chat_id) === 1007).length;

      // The bot removed from the storage channel: Telegram says "chat not found" about the channel, not the user.
      emu.failNext('copyMessages', { kind: 'status', code: 400, description: 'Bad Request: chat not found' });
      assert.match((await ask(1007, `/start ${uid}`)).text ?? '', /operator has been told/);
      assert.equal(await access(), 1, 'refunded');
      assert.equal((await user(1007))!.blocked_at, null, "the channel's fault is not the user's block");

      emu.failNext('copyMessages', {
        kind: 'status',
        code: 429,
        description: 'Too Many Requests: retry after 1',
        retryAfter: 1,
      });
      assert.match((await ask(1007, `/start ${uid}`)).text ?? '', /busy/);
      assert.equal(await access(), 1, 'refused: nothing sent, refunded');

      const before = copies();
      emu.failNext('copyMessages', { kind: 'status', code: 502, description: 'Bad Gateway' });
      assert.match((await ask(1007, `/start ${uid}`)).text ?? '', /did not confirm/);
      assert.equal(copies() - before, 1, 'a 5xx is not retried: the copy may already be in the chat');
      assert.equal(await access(), 0, 'maybe delivered: not refunded');
    });

    test('HEAD on a verify link (link checkers) spends nothing', async () => {
      const offer = await ask(1006, '/create_new_token');
      assert.match(offer.text ?? '', /Here is a new verification link/);
      const head = await fetch(verifyUrl(offer), { method: 'HEAD' });
      assert.equal(head.status, 200);
      const t = await svc.store.db
        .selectFrom('tokens')
        .select('status')
        .where('created_by', '=', 1006)
        .executeTakeFirstOrThrow();
      assert.equal(t.status, 'not_used');
      await svc.store.db.deleteFrom('tokens').where('created_by', '=', 1006).execute();
      await svc.store.db.deleteFrom('token_generator_count').where('user_id', '=', 1006).execute();
    });

    test('without access the user gets a verify link; opening it at once marks the token bypassed', async () => {
      const offer = await ask(1001, `/start ${fileUid}`);
      assert.match(offer.text ?? '', /no file accesses left/);
      const url = verifyUrl(offer);
      assert.ok(url.startsWith(`${svc.http.url}/verify?token=`), url);
      const res = await fetch(url, { headers: { referer: 'https://short.example/x' } });
      assert.equal(res.status, 200);
      const html = await res.text();
      const back = /href="(https:\/\/t\.me\/janitor_test_bot\?start=(verify_[A-Za-z0-9]+_1001))"/.exec(html);
      assert.ok(back, 'the page links back to the bot (works without JavaScript)');
      const tokens = await svc.store.db.selectFrom('tokens').selectAll().execute();
      assert.deepEqual(
        tokens.map((t) => t.status),
        ['bypassed'],
      );
      const explained = await ask(1001, `/start ${back[2]}`);
      assert.match(explained.text ?? '', /bypassed/);
      assert.equal(
        explained.reply_markup?.inline_keyboard?.[0]?.[0]?.url,
        `https://t.me/janitor_test_bot?start=${fileUid}`,
        'a way back to the file',
      );
      assert.equal((await user(1001))!.user_access_count, 0);
      const again = await fetch(url);
      assert.equal(again.status, 410, 'a used link is gone');
      assert.equal((await fetch(`${svc.http.url}/verify?token=nosuchtoken123`)).status, 404);
    });

    test('a new token opened after BYPASS_MIN_SECONDS from an allowed shortener is verified; the deep link grants access and delivers the file', async () => {
      const offer = await ask(1001, `/start ${fileUid}`);
      const url = verifyUrl(offer);
      clock.advance(121_000);
      const noReferer = await svc.store.db
        .selectFrom('tokens')
        .select('status')
        .where('status', '=', 'not_used')
        .execute();
      assert.equal(noReferer.length, 1);
      const res = await fetch(url, { headers: { referer: 'https://go.short.example/abc' } });
      assert.equal(res.status, 200);
      const back = /start=(verify_[A-Za-z0-9]+_1001)/.exec(await res.text())![1]!;
      // Another user cannot use it.
      const other = await ask(1002, `/start ${back}`);
      assert.match(other.text ?? '', /belongs to another user/);
      const before = botMessages(1001).length;
      const askedAt = clock.now().getTime();
      const ok = await ask(1001, `/start ${back}`);
      assert.match(ok.text ?? '', /Verified! You now have 5 file accesses/);
      await until(() => botMessages(1001).length >= before + 4, 'the delivered file and its notice');
      const delivered = botMessages(1001).slice(before + 1);
      assert.deepEqual(
        delivered.slice(0, 2).map((m) => m.text),
        ['part 1', 'part 2'],
      );
      assert.match(delivered[2]!.text ?? '', /deleted in 30 minutes/);
      assert.equal((await user(1001))!.user_access_count, 4);
      assert.equal(
        (await svc.store.db.selectFrom('tokens').select('token').where('status', '=', 'verified').execute()).length,
        0,
        'the used token is deleted',
      );
      // The deletion is recorded just after the notice goes out: wait for it rather than race it.
      const pending = () => svc.store.db.selectFrom('pending_deletions').selectAll().execute();
      await until(async () => (await pending()).length > 0, "the delivery's pending deletion");
      const rows = await pending();
      assert.equal(rows.length, 1, 'one pending deletion for the files and the notice');
      assert.deepEqual(
        JSON.parse(rows[0]!.message_ids),
        delivered.slice(0, 3).map((m) => m.message_id),
      );
      // Thirty minutes after the delivery, which came between the request and now (the clock flows).
      assert.ok(rows[0]!.delete_at >= askedAt + 30 * MIN, 'not before the delivery + 30 min');
      assert.ok(rows[0]!.delete_at <= clock.now().getTime() + 30 * MIN, 'not after it');
      assert.equal(rows[0]!.unique_id, fileUid);
    });

    test('the message deleter removes the delivery on time and sends "Click Here"', async () => {
      const row = await svc.store.db.selectFrom('pending_deletions').selectAll().executeTakeFirstOrThrow();
      const ids = JSON.parse(row.message_ids) as number[];
      clock.set(row.delete_at - 1000);
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(emu.hasMessage(1001, ids[0]!), 'not before delete_at');
      clock.set(row.delete_at);
      await until(() => ids.every((id) => !emu.hasMessage(1001, id)), 'the deletion');
      await until(
        async () => (await svc.store.db.selectFrom('pending_deletions').select('id').execute()).length === 0,
        'the row to go',
      );
      const notice = botMessages(1001).at(-1)!;
      assert.equal(notice.reply_markup?.inline_keyboard?.[0]?.[0]?.text, 'Click Here');
      assert.equal(
        notice.reply_markup?.inline_keyboard?.[0]?.[0]?.url,
        `https://t.me/janitor_test_bot?start=${fileUid}`,
      );
    });

    test('the (limit+1)-th token of a day is refused; the count resets after midnight in TIMEZONE', async () => {
      // User 1001 made two tokens today (the limit is 2).
      const refused = await ask(1001, '/create_new_token');
      assert.match(
        refused.text ?? '',
        /Daily limit reached: you can create 2 verification links a day\. It resets at 00:00 UTC/,
      );
      clock.set('2026-11-30T00:00:01Z');
      const r = await svc.janitor.run('token-count-reset');
      assert.equal(r.summary.deleted, 1);
      const offer = await ask(1001, '/create_new_token');
      assert.match(offer.text ?? '', /Verify once/);
    });

    test('an admin changes settings with checked arguments', async () => {
      assert.match((await ask(ADMIN, '/setdeletetime 5000')).text ?? '', /not valid.*1–2880/s);
      assert.match((await ask(ADMIN, '/setdeletetime')).text ?? '', /deleted 30 minutes after delivery/);
      assert.match(
        (await ask(ADMIN, '/setdeletetime 5')).text ?? '',
        /✅ Files are deleted 5 minutes after delivery\. \(was 30\)/,
      );
      assert.match((await ask(ADMIN, '/run token-cleanup')).text ?? '', /Running token-cleanup/);
      await until(() => /token-cleanup ok: deleted=/.test(botMessages(ADMIN).at(-1)?.text ?? ''), 'the /run result');
      assert.match((await ask(ADMIN, '/run nothing')).text ?? '', /Usage: \/run <job>/);
      assert.match((await ask(ADMIN, '/status')).text ?? '', /Pending deletions: 0/);
    });

    test('/broadcast 1 reaches every unblocked user and records each; /broadcast 72 is refused; the deleter removes them all', async () => {
      for (const id of [1003, 1004]) await ask(id, '/start');
      emu.blockUser(1003);
      await svc.store.db.updateTable('users').set({ is_banned: 1 }).where('user_id', '=', 1004).execute();
      // Plain text gets no answer; the bot handles updates in order, so the next command comes after it.
      const source = emu.sendUserMessage({ id: ADMIN }, 'Big news!') as { message: Record<string, unknown> };
      const refused = await ask(ADMIN, '/broadcast 72', { reply_to_message: source.message });
      assert.match(refused.text ?? '', /at most 47.*48 hours/s);
      const progress = await ask(ADMIN, '/broadcast 1', { reply_to_message: source.message });
      // The progress message may already be edited by the time we look.
      assert.match(progress.text ?? '', /Broadcast/);
      await until(
        () => /✅ Broadcast #\d+ sent to/.test(emu.message(ADMIN, progress.message_id)?.text ?? ''),
        'the progress message to finish',
      );
      const b = await svc.store.db.selectFrom('broadcasts').selectAll().executeTakeFirstOrThrow();
      assert.equal(b.status, 'sent');
      const recipients = (
        await svc.store.db.selectFrom('broadcast_messages').selectAll().orderBy('chat_id').execute()
      ).map((r) => r.chat_id);
      assert.deepEqual(
        recipients,
        [ADMIN, 1001, 1002, 1005, 1006, 1007].sort((x, y) => x - y),
      );
      assert.ok((await user(1003))!.blocked_at, 'the user who blocked the bot is marked');
      assert.equal(emu.messages(1004).filter((m) => m.text === 'Big news!').length, 0, 'banned users get nothing');
      for (const c of [1001, 1002]) assert.equal(emu.messages(c).at(-1)!.text, 'Big news!');
      clock.set(b.delete_at + 1000);
      const r = await svc.janitor.run('broadcast-deleter');
      assert.equal(r.summary.messages_deleted, 6);
      assert.equal(r.summary.broadcasts_done, 1);
      for (const c of [1001, 1002]) assert.notEqual(emu.messages(c).at(-1)?.text, 'Big news!');
      assert.equal((await svc.store.db.selectFrom('broadcasts').select('id').execute()).length, 0);
    });

    test("the day's figures were kept as things happened: deliveries, broadcasts, active users", async () => {
      const counters = await svc.store.db.selectFrom('day_counters').selectAll().execute();
      type Counted = 'files_delivered' | 'broadcasts_sent' | 'recipients_reached' | 'broadcasts_deleted';
      const sum = (k: Counted | 'broadcast_audience') => counters.reduce((a, c) => a + Number(c[k]), 0);
      assert.equal(sum('files_delivered'), 1, 'the one file delivered');
      assert.equal(sum('broadcasts_sent'), 1);
      assert.equal(sum('recipients_reached'), 6);
      assert.equal(sum('broadcast_audience'), 7, 'the six reached and the one who had blocked the bot');
      assert.equal(sum('broadcasts_deleted'), 1);
      const active = await svc.store.db.selectFrom('user_activity').select('user_id').execute();
      assert.ok(
        [ADMIN, 1001, 1002].every((u) => active.some((a) => Number(a.user_id) === u)),
        'the users who wrote are active on their days',
      );
    });

    test('/stats: the last 7 days of analytics, rates as percentages, as computed by hand', async () => {
      // The stats job's 00:05 run (due since the clock's jump past it) fills the missing days: let it finish first,
      // so it cannot write zeros over the days seeded here.
      const statsTick = Date.parse('2026-11-30T00:05:00Z');
      await until(
        async () =>
          (
            await svc.store.db
              .selectFrom('job_runs')
              .select('status')
              .where('job', '=', 'stats')
              .where('scheduled_for', '=', statsTick)
              .executeTakeFirst()
          )?.status === 'ok',
        "the stats job's 00:05 run",
      );
      const zero = Object.fromEntries(DAILY_STATS_FIELDS.map((k) => [k, 0])) as DayFigures;
      await saveDay(svc.store, '2026-11-26', { ...zero, tokens_created: 2, tokens_bypassed: 2 }, 0);
      const day27 = {
        ...zero,
        tokens_created: 8,
        tokens_verified: 6,
        tokens_bypassed: 1,
        files_delivered: 9,
        users_active: 6,
        deletions_done: 5,
        deletions_on_time: 4,
        deletions_late: 1,
        recipients_reached: 10,
        broadcast_audience: 16,
      };
      await saveDay(svc.store, '2026-11-27', day27, 0);
      const lateness = emptyLateness();
      for (const seconds of [0.1, 0.1, 0.3, 0.8, 12]) lateness[latenessBucket(seconds)]!++;
      await addLateness(svc.store, '2026-11-27', lateness);
      assert.equal((await svc.janitor.run('analytics')).status, 'ok');

      const reply = (await ask(ADMIN, '/stats')).text ?? '';
      const lines = reply.split('\n');
      assert.equal(lines[0], '📈 Analytics, last 7 days (UTC)');
      assert.deepEqual(
        lines.filter((l) => /^\d{4}-\d\d-\d\d$/.test(l)),
        ['2026-11-30', '2026-11-29', '2026-11-28', '2026-11-27', '2026-11-26', '2026-11-25', '2026-11-24'],
      );
      const day = (d: string) => lines.slice(lines.indexOf(d) + 1, lines.indexOf(d) + 4);
      // 6/8 verified, 1/8 bypassed, over 11-21..27 (1 + 2)/(8 + 2); 4/5 on time; lateness 0.1, 0.1, 0.3, 0.8, 12 s:
      // p50 rank 2.5 in (0.25, 0.5] with 2 below: 0.25 + 0.25 × 0.5 = 0.375 s, p99 rank 4.95 in (10, 30] with 4
      // below: 10 + 20 × 0.95 = 29 s; 9 files to 6 active users; 10 of 16 reached.
      assert.deepEqual(day('2026-11-27'), [
        '🎟️ tokens: 75.0% verified, 12.5% bypassed (7 days: 30.0%)',
        '🗑️ deletions: 80.0% on time, lateness p50 0.375 s, p99 29 s',
        '📦 1.50 files per active user · 📢 broadcast reach 62.5%',
      ]);
      assert.deepEqual(day('2026-11-26'), [
        '🎟️ tokens: 0.0% verified, 100.0% bypassed (7 days: 100.0%)',
        '🗑️ deletions: – on time, lateness p50 –, p99 –',
        '📦 – files per active user · 📢 broadcast reach –',
      ]);
      assert.match(day('2026-11-30')[2]!, /broadcast reach 85\.7%$/, "today's broadcast: 6 of 7");
    });
  });
}
