import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Bot, type Api, type Context } from 'grammy';
import type { Update } from 'grammy/types';
import { createJanitor, type Janitor } from '../src/janitor.ts';
import { FakeClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import type { Store } from '../src/store/db.ts';
import {
  autoDelete,
  type AutoDeleteApiFlavor,
  type AutoDeleteFlavor,
  type AutoDeletePlugin,
} from '../src/plugin/auto-delete.ts';
import { BACKENDS, createTestDb, type TestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { driveUntil } from './support/clock.ts';
import { pendingRows } from './support/world.ts';
import { exportCollection } from '../src/transfer/export.ts';
import { importCollection } from '../src/transfer/import.ts';

type C = Context & AutoDeleteFlavor;
type A = Api & AutoDeleteApiFlavor;

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const S = 1000;
const CHANNEL = -1001234567890;

for (const backend of BACKENDS) {
  describe(`the auto-delete plugin on ${backend}`, () => {
    let emu: BotApiEmulator;
    let tdb: TestDb;
    let store: Store;
    let janitor: Janitor;
    let mainBot: Bot<C, A>;
    const clock = new FakeClock(T0);

    before(async () => {
      emu = await BotApiEmulator.start({ now: () => clock.now().getTime() });
      tdb = await createTestDb(backend);
      store = await tdb.open();
      mainBot = new Bot<C, A>(emu.token, { client: { apiRoot: emu.url } });
      await mainBot.init();
      const config = { telegramRate: 0, telegramRetries: 0 };
      janitor = await createJanitor({ store, bot: mainBot, clock, logger, config, migrate: false });
    });
    after(async () => {
      await janitor.stop();
      await tdb.drop();
      await emu.close();
    });
    beforeEach(async () => {
      await store.db.deleteFrom('pending_deletions').execute();
      clock.set(T0);
      emu.resetCalls();
    });

    /** A bot of its own (its own transformers), talking to the emulator. */
    const newBot = () => new Bot<C, A>(emu.token, { client: { apiRoot: emu.url }, botInfo: mainBot.botInfo });
    const withTransformer = (p: AutoDeletePlugin) => {
      const b = newBot();
      b.api.config.use(p.transformer);
      return b;
    };
    /** The pending deletions, oldest first: chat, messages, delay after T0 in seconds, notice. */
    const rows = async () =>
      (await pendingRows(store)).map(({ chat, ids, deleteAt, notice }) => ({
        chat,
        ids,
        after_s: (deleteAt - T0) / S,
        notice,
      }));
    /** Runs `fn` as the handler of a user's message `text` in chat `user`; returns what it threw, if anything. */
    async function onUpdate(bot: Bot<C, A>, user: number, text: string, fn: (ctx: C) => Promise<void>) {
      let thrown: unknown = null;
      bot.on('message', (ctx) => fn(ctx).catch((e: unknown) => void (thrown = e)));
      await bot.handleUpdate(emu.sendUserMessage({ id: user }, text) as Update);
      return thrown;
    }

    test('bot.api: every kind of send is recorded with its chat and ids, and Telegram never sees auto_delete', async () => {
      const bot = withTransformer(autoDelete(janitor));
      const [src1, src2] = [emu.addMessage(CHANNEL, { text: 'a' }), emu.addMessage(CHANNEL, { text: 'b' })];
      const text = await bot.api.sendMessage(101, 'hello', { auto_delete: '30m' });
      assert.equal(text.message_id, 1);
      await bot.api.sendPhoto(101, 'photo-file-id', { auto_delete: '90s', caption: 'a photo' });
      const group = await bot.api.sendMediaGroup(
        101,
        [
          { type: 'photo', media: 'p1' },
          { type: 'photo', media: 'p2' },
        ],
        { auto_delete: '2h' },
      );
      assert.deepEqual(
        group.map((m) => m.message_id),
        [3, 4],
      );
      await bot.api.copyMessage(101, CHANNEL, src1, { auto_delete: { after: '1m', notice: true } });
      await bot.api.copyMessages(101, CHANNEL, [src1, src2], { auto_delete: 60 });
      await bot.api.forwardMessage(101, CHANNEL, src2, { auto_delete: '1h30m' });
      await bot.api.forwardMessages(-100500, CHANNEL, [src1, src2], { auto_delete: '45s' });
      await bot.api.sendDocument(101, 'doc-id', { auto_delete: '1m' });
      await bot.api.raw.sendMessage({ chat_id: 101, text: 'raw', auto_delete: '5m' });
      await bot.api.sendMessage(101, 'kept: no default, no auto_delete');
      assert.deepEqual(await rows(), [
        { chat: 101, ids: [1], after_s: 1800, notice: 0 },
        { chat: 101, ids: [2], after_s: 90, notice: 0 },
        { chat: 101, ids: [3, 4], after_s: 7200, notice: 0 },
        { chat: 101, ids: [5], after_s: 60, notice: 1 },
        { chat: 101, ids: [6, 7], after_s: 60, notice: 0 },
        { chat: 101, ids: [8], after_s: 5400, notice: 0 },
        { chat: -100500, ids: [1, 2], after_s: 45, notice: 0 },
        { chat: 101, ids: [9], after_s: 60, notice: 0 },
        { chat: 101, ids: [10], after_s: 300, notice: 0 },
      ]);
      assert.equal(emu.calls.length, 10);
      assert.deepEqual(
        emu.calls.filter((c) => 'auto_delete' in c.params),
        [],
      );
    });

    test('ctx: replies, media, copies and forwards, ctx.api and ctx.deleteAfter, with the plugin from bot.use only', async () => {
      const plugin = autoDelete(janitor);
      const bot = newBot();
      bot.use(plugin);
      let installed = -1;
      const thrown = await onUpdate(bot, 202, '/go', async (ctx) => {
        installed = ctx.api.config.installedTransformers().filter((t) => t === plugin.transformer).length;
        await ctx.reply('hi', { auto_delete: '30m' }); // 2 (the user's /go is 1)
        await ctx.replyWithPhoto('photo-id', { auto_delete: { after: '10m', notice: true } }); // 3
        await ctx.replyWithMediaGroup(
          [
            { type: 'document', media: 'd1' },
            { type: 'document', media: 'd2' },
          ],
          { auto_delete: '1h' },
        ); // 4, 5
        await ctx.copyMessage(-100600, { auto_delete: '2m' }); // the /go, copied: -100600's 1
        await ctx.forwardMessage(-100600, { auto_delete: '3m' }); // -100600's 2
        await ctx.copyMessages(-100600, [1, 2], { auto_delete: '4m' }); // -100600's 3, 4
        await ctx.forwardMessages(-100600, [1, 3], { auto_delete: '5m' }); // -100600's 5, 6
        await ctx.api.sendMessage(202, 'through ctx.api', { auto_delete: '6m' }); // 6
        await ctx.deleteAfter('1m'); // the user's /go
        await ctx.reply('kept'); // 7
      });
      assert.equal(thrown, null);
      assert.equal(installed, 1, 'the middleware installs the transformer on ctx.api once');
      assert.deepEqual(await rows(), [
        { chat: 202, ids: [2], after_s: 1800, notice: 0 },
        { chat: 202, ids: [3], after_s: 600, notice: 1 },
        { chat: 202, ids: [4, 5], after_s: 3600, notice: 0 },
        { chat: -100600, ids: [1], after_s: 120, notice: 0 },
        { chat: -100600, ids: [2], after_s: 180, notice: 0 },
        { chat: -100600, ids: [3, 4], after_s: 240, notice: 0 },
        { chat: -100600, ids: [5, 6], after_s: 300, notice: 0 },
        { chat: 202, ids: [6], after_s: 360, notice: 0 },
        { chat: 202, ids: [1], after_s: 60, notice: 0 },
      ]);
      assert.equal(emu.hasMessage(202, 7), true);
    });

    test('installed on bot.api and by bot.use, a send through ctx is recorded once', async () => {
      const plugin = autoDelete(janitor, { after: '15m' });
      const bot = withTransformer(plugin);
      bot.use(plugin);
      let installed = -1;
      const thrown = await onUpdate(bot, 303, 'hello', async (ctx) => {
        installed = ctx.api.config.installedTransformers().filter((t) => t === plugin.transformer).length;
        await ctx.reply('one');
      });
      assert.equal(thrown, null);
      assert.equal(installed, 1);
      assert.deepEqual(await rows(), [{ chat: 303, ids: [2], after_s: 900, notice: 0 }]);
    });

    test('defaults apply to sends that say nothing; auto_delete: false opts out, a per-call value wins', async () => {
      const bot = withTransformer(autoDelete(janitor, { after: '10m' }));
      await bot.api.sendMessage(401, 'default'); // 1
      await bot.api.sendMessage(401, 'opted out', { auto_delete: false }); // 2
      await bot.api.sendMessage(401, 'one minute', { auto_delete: '1m' }); // 3
      await bot.api.sendMessage(401, 'with notice', { auto_delete: { after: '5m', notice: true } }); // 4
      // A business chat's messages are out of reach of deleteMessages: no default for them.
      await bot.api.sendMessage(401, 'business', { business_connection_id: 'bc1' }); // 5
      const noticing = withTransformer(autoDelete(janitor, { after: '10m', notice: true }));
      await noticing.api.sendMessage(402, 'default notice'); // 1
      await noticing.api.sendMessage(402, 'declined', { auto_delete: { after: '2m', notice: false } }); // 2
      await noticing.api.getChat(402); // no message: passed through
      assert.deepEqual(await rows(), [
        { chat: 401, ids: [1], after_s: 600, notice: 0 },
        { chat: 401, ids: [3], after_s: 60, notice: 0 },
        { chat: 401, ids: [4], after_s: 300, notice: 1 },
        { chat: 402, ids: [1], after_s: 600, notice: 1 },
        { chat: 402, ids: [2], after_s: 120, notice: 0 },
      ]);
      assert.equal(emu.messages(401).length, 5);
    });

    test('a delay past 47h58m, a bad delay or an impossible send is refused before anything reaches Telegram', async () => {
      const bot = withTransformer(autoDelete(janitor));
      const limit = /is past the limit of 47h58m \(172680 s\): Telegram deletes no message older than 48 hours/;
      await assert.rejects(bot.api.sendMessage(501, 'x', { auto_delete: '47h58m1s' }), limit);
      await assert.rejects(bot.api.sendPhoto(501, 'p', { auto_delete: '48h' }), limit);
      await assert.rejects(bot.api.copyMessages(501, CHANNEL, [1], { auto_delete: 172_681 }), limit);
      await assert.rejects(bot.api.sendMessage(501, 'x', { auto_delete: { after: '3d' } }), /"3d" is not a delay/);
      await assert.rejects(bot.api.sendMessage(501, 'x', { auto_delete: 'soon' }), {
        name: 'AutoDeleteError',
        message:
          'auto_delete: "soon" is not a delay: expected a number of seconds, or a string such as "90s", "30m", "2h" or "1h30m"',
      });
      await assert.rejects(bot.api.sendMessage(501, 'x', { auto_delete: 0 }), /must be more than 0 seconds/);
      await assert.rejects(bot.api.sendMessage(501, 'x', { auto_delete: -30 }), /must be more than 0 seconds/);
      await assert.rejects(
        bot.api.copyMessages('@somechannel', CHANNEL, [1], { auto_delete: '1m' }),
        /copyMessages to "@somechannel": its answer does not name the chat, so chat_id must be a numeric id/,
      );
      await assert.rejects(
        bot.api.sendMessage(501, 'x', { auto_delete: '1m', business_connection_id: 'bc1' }),
        /on behalf of a business account cannot be auto-deleted/,
      );
      const raw = bot.api.raw as unknown as Record<string, (p: object) => Promise<unknown>>;
      await assert.rejects(raw.getChat!({ chat_id: 501, auto_delete: '1m' }), /getChat sends no message/);
      assert.equal(emu.calls.length, 0, 'no call reached the emulator');
      assert.deepEqual(await rows(), []);
      // Exactly the limit is fine.
      await bot.api.sendMessage(501, 'x', { auto_delete: '47h58m' });
      assert.deepEqual(await rows(), [{ chat: 501, ids: [1], after_s: 172_680, notice: 0 }]);
      // A bad default, or a janitor that could never delete, is refused when the plugin is made.
      assert.throws(() => autoDelete(janitor, { after: '48h' }), /after: "48h" is past the limit of 47h58m/);
      const offline = await createJanitor({ store, clock, logger, migrate: false });
      assert.throws(() => autoDelete(offline), /the janitor has no Telegram client/);
      await offline.stop();
    });

    test('ctx.deleteAfter refuses a delay that ends past 47h58m after the message was sent', async () => {
      const bot = newBot();
      bot.use(autoDelete(janitor));
      const update = emu.sendUserMessage({ id: 601 }, '/late') as Update; // sent at T0
      clock.set(T0 + 10 * 60 * S); // handled ten minutes later
      let thrown: unknown = null;
      bot.on('message', (ctx) => ctx.deleteAfter('47h50m').catch((e: unknown) => void (thrown = e)));
      await bot.handleUpdate(update);
      assert.match(String(thrown), /past the limit of 47h58m after it/);
      assert.deepEqual(await rows(), []);
    });

    test('the deleter deletes on time, sends the notice only where asked, and never schedules its own notice', async () => {
      // On the janitor's own bot, with a default: its notice goes through this Api, and must stay.
      mainBot.api.config.use(autoDelete(janitor, { after: '10m' }).transformer);
      await mainBot.api.sendMessage(701, 'with notice', { auto_delete: { after: '1m', notice: true } });
      await mainBot.api.sendMessage(702, 'silent', { auto_delete: '1m' });
      emu.resetCalls();
      clock.set(T0 + 60 * S);
      const r = await janitor.run('message-deleter');
      assert.equal(r.status, 'ok');
      if (r.status !== 'ok') return;
      assert.equal(r.summary.messages_deleted, 2);
      assert.equal(r.summary.notices_sent, 1);
      assert.equal(emu.hasMessage(701, 1), false);
      assert.equal(emu.hasMessage(702, 1), false);
      assert.deepEqual(
        emu.callsOf('sendMessage').map((c) => Number(c.params.chat_id)),
        [701],
      );
      assert.deepEqual(await rows(), [], "the deleter's notice got no deletion of its own");
      assert.equal(emu.messages(701).length, 1, 'the notice stays');
    });

    test('export and import keep a silent deletion silent (notice: false, written only when false)', async () => {
      await janitor.scheduleDeletion({ chatId: 901, messageIds: [1], deleteAt: new Date(T0 + 60 * S), notice: false });
      await janitor.scheduleDeletion({ chatId: 902, messageIds: [2], deleteAt: new Date(T0 + 60 * S) });
      const lines: string[] = [];
      await exportCollection(store, 'pending_deletions', (l) => void lines.push(l));
      const common = '"delete_at":"2026-11-29T10:01:00.000Z","unique_id":null,"created_at":"2026-11-29T10:00:00.000Z"';
      const retry = '"attempts":0,"next_attempt_at":"2026-11-29T10:01:00.000Z","last_error":null';
      assert.deepEqual(lines, [
        `{"user_id":901,"chat_id":901,"message_ids":[1],${common},${retry},"notice":false}`,
        `{"user_id":902,"chat_id":902,"message_ids":[2],${common},${retry}}`,
      ]);
      const other = await createTestDb(backend);
      try {
        const moved = await other.open();
        await importCollection(moved, 'pending_deletions', lines.join('\n'));
        const got = await moved.db
          .selectFrom('pending_deletions')
          .select(['chat_id', 'notice'])
          .orderBy('id')
          .execute();
        assert.deepEqual(
          got.map((r) => [Number(r.chat_id), Number(r.notice)]),
          [
            [901, 0],
            [902, 1],
          ],
        );
      } finally {
        await other.drop();
      }
    });

    test('a deletion that cannot be recorded leaves the send standing and is logged with chat and message ids', async () => {
      const lines: string[] = [];
      const sink = new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) });
      const failing = await createJanitor({
        store,
        bot: newBot(),
        clock,
        logger: createLogger({ level: 'info', destination: sink }),
        migrate: false,
      });
      let attempts = 0;
      failing.scheduleDeletion = () => (attempts++, Promise.reject(new Error('database is down')));
      const bot = withTransformer(autoDelete(failing));
      let sent: { message_id: number } | null = null;
      const p = bot.api.sendMessage(801, 'x', { auto_delete: '1m' }).then((m) => void (sent = m));
      await driveUntil(clock, () => sent !== null, 'the send to resolve');
      await p;
      assert.equal(sent!.message_id, 1);
      assert.equal(attempts, 3);
      const error = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 50);
      assert.deepEqual(error?.message_ids, [1]);
      assert.equal(error?.chat_id, 801);
      assert.equal(
        error?.msg,
        'auto-delete: messages 1 in chat 801 were sent but their deletion could not be recorded (database is down); they will not be deleted',
      );
      await failing.stop();
    });
  });
}
