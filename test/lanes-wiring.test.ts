/**
 * Who waits in which lane of the throttle (issue 13, part 1): the message deleter's calls in `deletion`, the
 * broadcast sender's and the broadcast deleter's in `bulk`, a bot author's own calls in `reply`. Read where the
 * calls leave the client, on the emulator and a SQLite database.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../src/clock.ts';
import { createLogger } from '../src/log.ts';
import { messageDeleterJob } from '../src/jobs/message-deleter.ts';
import { broadcastDeleterJob } from '../src/jobs/broadcast-deleter.ts';
import { BroadcastSender } from '../src/bot/broadcast-sender.ts';
import { insertDeletion } from '../src/store/deletions.ts';
import { insertBroadcast } from '../src/store/broadcasts.ts';
import type { RunContext } from '../src/scheduler/job.ts';
import { currentLane, type Telegram } from '../src/telegram/client.ts';
import type { Lane } from '../src/telegram/lanes.ts';
import { withTestDb } from './support/db.ts';
import { BotApiEmulator } from './support/bot-api-emulator.ts';
import { emulatorTelegram } from './support/telegram.ts';
import { until } from './support/wait.ts';
import { addUsers, adminBroadcast } from './support/world.ts';

const logger = createLogger({ level: 'silent' });
const T0 = new Date('2026-11-29T10:00:00Z').getTime();
const ADMIN = 4242;

/** The emulator's client, and each call's method and lane as it leaves. */
function recorded(emu: BotApiEmulator): { telegram: Telegram; seen: [string, Lane][] } {
  const telegram = emulatorTelegram(emu);
  const seen: [string, Lane][] = [];
  telegram.api.config.use((prev, method, payload, signal) => {
    seen.push([method, currentLane()]);
    return prev(method, payload, signal);
  });
  return { telegram, seen };
}

const runCtx = (clock: FakeClock): RunContext => ({
  now: clock.now(),
  clock,
  wallClock: clock,
  dryRun: false,
  trigger: 'schedule',
  signal: new AbortController().signal,
  logger,
});

test('the deleters, the sender and a bot author each call in their own lane', async () => {
  const emu = await BotApiEmulator.start({ now: () => T0 });
  try {
    await withTestDb('sqlite', async (store) => {
      const { telegram, seen } = recorded(emu);
      const clock = new FakeClock(T0);
      const lanesOf = (methods: string[]) => new Set(seen.filter(([m]) => methods.includes(m)).map(([, lane]) => lane));

      // The message deleter: the deletion and its notice.
      await addUsers(store, [501], T0);
      const ids = [emu.addMessage(501, { text: 'file', sentAt: T0 - 60_000 })];
      await insertDeletion(store, {
        userId: 501,
        chatId: 501,
        messageIds: ids,
        deleteAt: T0,
        uniqueId: 'f',
        createdAt: T0,
      });
      const deleted = await messageDeleterJob({ store, telegram, owner: 'w' }, '* * * * *').run(runCtx(clock));
      assert.equal(deleted.notices_sent, 1);
      assert.deepEqual(lanesOf(['deleteMessages', 'sendMessage']), new Set(['deletion']));
      seen.length = 0;

      // The broadcast deleter.
      const b = await insertBroadcast(store, {
        fromChatId: ADMIN,
        messageId: 1,
        text: 'old news',
        caption: null,
        fileId: null,
        durationHours: 1,
        createdAt: T0 - 3_600_000,
        progressChatId: null,
        progressMessageId: null,
      });
      await store.db.updateTable('broadcasts').set({ status: 'sent' }).where('id', '=', b).execute();
      const message = emu.addMessage(502, { text: 'old news', sentAt: T0 - 3_600_000 });
      await store.db
        .insertInto('broadcast_messages')
        .values({ broadcast_id: b, chat_id: 502, message_id: message })
        .execute();
      const swept = await broadcastDeleterJob({ store, telegram, owner: 'w' }, '0 * * * *').run(runCtx(clock));
      assert.equal(swept.messages_deleted, 1);
      assert.deepEqual(lanesOf(['deleteMessage']), new Set(['bulk']));
      seen.length = 0;

      // The broadcast sender (on real time: it polls between passes).
      await addUsers(store, [503, 504], T0);
      const sending = await adminBroadcast(emu, store, { admin: ADMIN, createdAt: Date.now(), progress: false });
      const sender = new BroadcastSender({
        store,
        api: telegram.api,
        clock: systemClock,
        logger,
        owner: 'w',
        timezone: 'UTC',
        pollMs: 50,
      });
      sender.start();
      try {
        const status = async () =>
          (await store.db.selectFrom('broadcasts').select('status').where('id', '=', sending).executeTakeFirstOrThrow())
            .status;
        await until(async () => (await status()) === 'sent', 'the broadcast to be sent');
      } finally {
        await sender.stop();
      }
      assert.ok(seen.filter(([m]) => m === 'copyMessage').length >= 3, 'the admin and both users');
      assert.deepEqual(lanesOf(['copyMessage']), new Set(['bulk']));

      // A bot author's own call, outside any lane.
      seen.length = 0;
      await telegram.api.sendMessage(503, 'hello');
      assert.deepEqual(seen, [['sendMessage', 'reply']]);
    });
  } finally {
    await emu.close();
  }
});
